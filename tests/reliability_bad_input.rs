//! Bad-input catalogue against the real `serve` wiring over TLS: every malformed or hostile body
//! gets the error the contract (README, "HTTP contract") names, over HTTP/1.1 and HTTP/2, and the very next
//! valid review on a fresh connection is still mutated.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/app.rs"]
mod test_app;
#[path = "support/tls.rs"]
mod tls_support;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use fake_apiserver::FakeApiServer;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use test_app::TestApp;
use tls_support::{generate_ca_and_leaf, ClientOpts, Http};

const PATH: &str = "/mutate-v1-pod?timeout=10s";

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "web-", "namespace": "ns",
                     "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": "workload",
                 "containers": [{"name": "app", "image": "app"}]}
    })
}

fn review(object: &Value) -> Value {
    serde_json::from_slice(&test_app::pod_review(
        "admission.k8s.io/v1",
        "uid-1",
        object,
    ))
    .expect("json")
}

fn bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("json")
}

/// What the contract promises for one input.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// HTTP status (400/413) with an AdmissionReview-shaped refusal whose message contains this.
    Refused(u16, &'static str),
    /// HTTP 200, `allowed: false`, `status.code` 400, message containing this.
    Denied(&'static str),
    /// HTTP 200, `allowed: true` and no patch.
    AllowedUnchanged,
    /// HTTP 200, `allowed: true` with a patch that applies to the request's object.
    Mutated,
}

struct Case {
    name: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    expect: Expect,
}

fn case(name: &'static str, body: Vec<u8>, expect: Expect) -> Case {
    Case {
        name,
        content_type: "application/json",
        body,
        expect,
    }
}

fn nested(depth: usize) -> String {
    "[".repeat(depth) + &"]".repeat(depth)
}

fn catalogue() -> Vec<Case> {
    use Expect::*;
    let valid = bytes(&review(&pod()));
    let mut cases = vec![
        case("empty body", Vec::new(), Refused(400, "empty")),
        case(
            "whitespace body",
            b" \r\n\t ".to_vec(),
            Refused(400, "empty"),
        ),
        case(
            "not JSON",
            b"hello, webhook".to_vec(),
            Refused(400, "not valid JSON"),
        ),
        case(
            "JSON null",
            b"null".to_vec(),
            Refused(400, "not a valid AdmissionReview"),
        ),
        case(
            "JSON array",
            b"[1,2]".to_vec(),
            Refused(400, "not a valid AdmissionReview"),
        ),
        case(
            "truncated JSON",
            valid[..valid.len() / 2].to_vec(),
            Refused(400, "not valid JSON"),
        ),
        // The envelope decoder reads a top-level array as a struct, so the first element's type
        // is what fails; nesting under an unknown key is skipped without recursion.
        case(
            "10,000-level nesting",
            nested(10_000).into_bytes(),
            Refused(400, "not a valid AdmissionReview"),
        ),
        case(
            "10,000-level nesting under an unknown key",
            format!("{{\"x\":{}}}", nested(10_000)).into_bytes(),
            Refused(400, "no request"),
        ),
        case("8 MiB body", vec![b' '; 8 << 20], Refused(413, "too large")),
        case(
            "no request",
            bytes(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})),
            Refused(400, "no request"),
        ),
        case(
            "unknown apiVersion",
            bytes(
                &json!({"apiVersion": "admission.k8s.io/v2", "kind": "AdmissionReview", "request": {"uid": "u"}}),
            ),
            Refused(400, "unsupported apiVersion"),
        ),
        case(
            "wrong kind",
            bytes(
                &json!({"apiVersion": "admission.k8s.io/v1", "kind": "Pod", "request": {"uid": "u"}}),
            ),
            Refused(400, "unsupported kind"),
        ),
        case(
            "uid is a number",
            bytes(
                &json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": 42}}),
            ),
            Refused(400, "not a valid AdmissionReview"),
        ),
        case(
            "request is a string",
            bytes(&json!({"kind": "AdmissionReview", "request": "pod"})),
            Refused(400, "not a valid AdmissionReview"),
        ),
        case(
            "null everywhere in the envelope",
            bytes(&json!({"apiVersion": null, "kind": null, "request": null})),
            Refused(400, "no request"),
        ),
        case(
            "duplicate request key",
            br#"{"kind":"AdmissionReview","request":{"uid":"a"},"request":{"uid":"b"}}"#.to_vec(),
            Refused(400, "duplicate field"),
        ),
        case("wrong content type", valid.clone(), Mutated),
    ];
    cases.last_mut().expect("case").content_type = "text/plain; charset=latin1";
    let mut non_utf8 = valid.clone();
    let at = find(&non_utf8, b"web-");
    non_utf8[at] = 0xff;
    cases.push(case(
        "non-UTF-8 in the pod",
        non_utf8,
        Refused(400, "not valid JSON"),
    ));
    cases.push(case(
        "raw non-UTF-8 bytes",
        vec![0xc3, 0x28, 0xff, 0xfe],
        Refused(400, "not valid JSON"),
    ));

    let mut r = review(&pod());
    r["request"]
        .as_object_mut()
        .expect("request")
        .remove("object");
    cases.push(case("no object", bytes(&r), Denied("no object")));
    let mut r = review(&json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}}));
    r["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    cases.push(case("non-Pod object", bytes(&r), AllowedUnchanged));
    let mut r = review(&json!({"kind": "ConfigMap", "data": {"a": "b"}}));
    r["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
    cases.push(case(
        "ConfigMap sent as a Pod",
        bytes(&r),
        Denied("no spec"),
    ));
    let mut p = pod();
    p["spec"]["containers"] = json!("app");
    cases.push(case(
        "containers is a string",
        bytes(&review(&p)),
        Denied("not a valid Pod"),
    ));
    let mut p = pod();
    p["metadata"]["labels"] = json!(["azure.workload.identity/use"]);
    cases.push(case(
        "labels is an array",
        bytes(&review(&p)),
        Denied("not a valid Pod"),
    ));
    let object = br#"{"kind":"Pod","metadata":{"namespace":"ns"},"spec":{},"spec":{}}"#;
    let body = bytes(&review(&json!("OBJECT")));
    let body = String::from_utf8(body)
        .expect("utf8")
        .replace("\"OBJECT\"", std::str::from_utf8(object).expect("utf8"));
    cases.push(case(
        "duplicate spec key",
        body.into_bytes(),
        Denied("duplicate field"),
    ));
    let nulls = json!({"apiVersion": null, "kind": null,
        "metadata": {"name": null, "namespace": null, "labels": null, "annotations": null},
        "spec": {"serviceAccountName": null, "containers": null, "initContainers": null, "volumes": null}});
    // The label is the objectSelector's business: a pod that reaches the webhook is mutated.
    cases.push(case(
        "null everywhere in the pod",
        bytes(&review(&nulls)),
        Mutated,
    ));
    let mut r = review(&Value::Null);
    for key in ["kind", "operation", "namespace", "subResource"] {
        r["request"][key] = Value::Null;
    }
    cases.push(case(
        "null everywhere in the request",
        bytes(&r),
        AllowedUnchanged,
    ));
    let mut p = pod();
    p["metadata"]["annotations"] = json!({"big": "x".repeat(2 << 20)});
    cases.push(case("2 MiB annotation value", bytes(&review(&p)), Mutated));
    let mut p = pod();
    p["metadata"]["x-deep"] = serde_json::from_str::<Value>(&nested(100)).expect("json");
    let deep = bytes(&review(&p));
    let deep = String::from_utf8(deep)
        .expect("utf8")
        .replace(&nested(100), &nested(10_000));
    cases.push(case(
        "10,000-level nesting in an unread pod field",
        deep.into_bytes(),
        Mutated,
    ));
    let mut p = pod();
    p["spec"]["containers"] = (0..3000)
        .map(|i| json!({"name": format!("c{i}"), "image": "app", "env": [{"name": "A", "value": "b"}]}))
        .collect();
    cases.push(case("3,000 containers", bytes(&review(&p)), Mutated));
    cases
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

struct Reply {
    status: u16,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// One POST on a fresh TLS connection with a chosen content type.
async fn send(addr: SocketAddr, ca: &str, http: Http, content_type: &str, body: Vec<u8>) -> Reply {
    let tls = tls_support::connect(addr, &ClientOpts::new(ca, http))
        .await
        .expect("connect");
    let req = hyper::Request::post(format!("https://localhost{PATH}"))
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let io = TokioIo::new(tls);
    let resp = match http {
        Http::V2 => {
            let (mut tx, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .expect("h2 handshake");
            tokio::spawn(conn);
            tx.send_request(req).await.expect("response")
        }
        Http::V1 => {
            let (mut tx, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("h1 handshake");
            tokio::spawn(conn);
            tx.send_request(req).await.expect("response")
        }
    };
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Reply {
        status,
        content_type,
        body: body.to_vec(),
    }
}

fn check(case: &Case, http: Http, reply: &Reply) {
    let what = format!("{} over {http:?}", case.name);
    let text = String::from_utf8_lossy(&reply.body[..reply.body.len().min(600)]).into_owned();
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/json"),
        "{what}"
    );
    let answer: Value = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("{what}: response is not JSON ({e}): {text}"));
    assert_eq!(answer["kind"], "AdmissionReview", "{what}: {text}");
    let response = &answer["response"];
    match case.expect {
        Expect::Refused(status, message) => {
            assert_eq!(reply.status, status, "{what}: {text}");
            assert_eq!(response["allowed"], false, "{what}");
            assert_eq!(response["status"]["code"], status, "{what}");
            let got = response["status"]["message"].as_str().unwrap_or_default();
            assert!(got.contains(message), "{what}: message {got:?}");
        }
        Expect::Denied(message) => {
            assert_eq!(reply.status, 200, "{what}: {text}");
            assert_eq!(response["uid"], "uid-1", "{what}");
            assert_eq!(response["allowed"], false, "{what}: {text}");
            assert_eq!(response["status"]["code"], 400, "{what}");
            let got = response["status"]["message"].as_str().unwrap_or_default();
            assert!(got.contains(message), "{what}: message {got:?}");
        }
        Expect::AllowedUnchanged => {
            assert_eq!(reply.status, 200, "{what}: {text}");
            assert_eq!(response["uid"], "uid-1", "{what}");
            assert_eq!(response["allowed"], true, "{what}: {text}");
            assert!(response.get("patch").is_none(), "{what}: {text}");
        }
        Expect::Mutated => {
            assert_eq!(reply.status, 200, "{what}: {text}");
            assert_eq!(response["allowed"], true, "{what}: {text}");
            let patch = response["patch"].as_str().expect("a patch");
            let patch = base64::engine::general_purpose::STANDARD
                .decode(patch)
                .expect("base64");
            let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("JSON Patch");
            // A deeply nested request cannot be re-read as a `Value` (serde_json's recursion
            // limit); the patch check is for the others.
            if let Ok(request) = serde_json::from_slice::<Value>(&case.body) {
                let mut object = request["request"]["object"].clone();
                json_patch::patch(&mut object, &patch).expect("patch applies");
            }
        }
    }
}

#[tokio::test]
async fn every_bad_input_gets_the_contract_error_and_the_server_keeps_serving() {
    let fake = FakeApiServer::start_with_workload().await;
    // A pod with a null serviceAccountName uses `default`.
    fake.add_service_account("ns", "default", &[]);
    let pki = generate_ca_and_leaf(&["localhost"]);
    let config = test_app::serve_config(pki.path(), true, "azure-workload-identity-system");
    let app = TestApp::start(config, test_app::settings(), fake.config());
    assert!(app.wait_ready(Duration::from_secs(10)).await, "not ready");

    let valid = bytes(&review(&pod()));
    for case in catalogue() {
        for http in [Http::V1, Http::V2] {
            let reply = send(
                app.addr,
                &pki.ca.pem,
                http,
                case.content_type,
                case.body.clone(),
            )
            .await;
            check(&case, http, &reply);
            // The server is still up and serving: the next valid review is mutated.
            let next = send(
                app.addr,
                &pki.ca.pem,
                http,
                "application/json",
                valid.clone(),
            )
            .await;
            let follow_up = Case {
                name: "valid review after the bad one",
                content_type: "application/json",
                body: valid.clone(),
                expect: Expect::Mutated,
            };
            check(&follow_up, http, &next);
        }
    }
    assert_eq!(app.readyz().await, Some(200));
    app.stop().await;
}
