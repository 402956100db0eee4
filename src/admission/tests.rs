//! Handler tests: whole AdmissionReview bodies in, response bodies out, with in-memory service accounts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use super::Admitter;
use crate::k8s::service_accounts::{LookupError, ServiceAccounts};
use crate::mutate::service_account::ServiceAccountMeta;
use futures::future::BoxFuture;
use crate::mutate::settings::{ProxySettings, Settings};

/// Service accounts held in memory; `down` makes every lookup fail, `delay` makes it slow.
#[derive(Default)]
struct FakeServiceAccounts {
    accounts: BTreeMap<(String, String), Arc<ServiceAccountMeta>>,
    down: bool,
    delay: Option<Duration>,
}

impl ServiceAccounts for FakeServiceAccounts {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<ServiceAccountMeta>, LookupError>> {
        Box::pin(async move {
            if let Some(delay) = self.delay {
                tokio::time::sleep(delay).await;
            }
            if self.down {
                return Err(LookupError::Unavailable {
                    namespace: namespace.into(),
                    name: name.into(),
                    reason: "connection refused".into(),
                });
            }
            self.accounts
                .get(&(namespace.to_owned(), name.to_owned()))
                .cloned()
                .ok_or_else(|| LookupError::NotFound {
                    namespace: namespace.into(),
                    name: name.into(),
                })
        })
    }
}

fn settings() -> Arc<Settings> {
    Arc::new(Settings {
        audience: "api://AzureADTokenExchange".into(),
        tenant_id: "tenant".into(),
        authority_host: "https://login.microsoftonline.com/".into(),
        identity_binding: None,
        proxy: ProxySettings::default(),
        native_sidecars: false,
    })
}

fn accounts() -> FakeServiceAccounts {
    let mut accounts = FakeServiceAccounts::default();
    let sa = ServiceAccountMeta {
        namespace: "ns".into(),
        name: "workload".into(),
        annotations: [(
            "azure.workload.identity/client-id".to_string(),
            "client".to_string(),
        )]
        .into(),
    };
    accounts
        .accounts
        .insert(("ns".into(), "workload".into()), Arc::new(sa));
    accounts
}

fn admitter(accounts: FakeServiceAccounts) -> Admitter {
    Admitter::new(
        settings(),
        Arc::new(accounts),
        crate::metrics::Metrics::new().expect("metrics"),
    )
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "ns"},
        "spec": {"serviceAccountName": "workload", "containers": [{"name": "app", "image": "app"}]}
    })
}

fn review(api_version: &str, operation: &str, object: Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": "uid-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": operation,
            "namespace": "ns",
            "object": object
        }
    })
}

async fn send(admitter: &Admitter, body: &[u8]) -> (u16, Value) {
    let reply = admitter.admit(body, None).await;
    let value = serde_json::from_slice(&reply.body).expect("response is JSON");
    (reply.status, value)
}

fn apply_patch(response: &Value, object: &Value) -> Value {
    assert_eq!(response["response"]["patchType"], "JSONPatch");
    let encoded = response["response"]["patch"]
        .as_str()
        .expect("patch is a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("RFC 6902");
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).expect("applies");
    patched
}

#[tokio::test]
async fn answers_v1_with_a_base64_patch() {
    let admitter = admitter(accounts());
    let body = review("admission.k8s.io/v1", "CREATE", pod()).to_string();
    let (status, response) = send(&admitter, body.as_bytes()).await;
    assert_eq!(status, 200);
    assert_eq!(response["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(response["kind"], "AdmissionReview");
    assert_eq!(response["response"]["uid"], "uid-1");
    assert_eq!(response["response"]["allowed"], true);
    let patched = apply_patch(&response, &pod());
    assert_eq!(
        patched["spec"]["containers"][0]["env"][0]["value"],
        "client"
    );
    assert!(response["response"].get("status").is_none());
}

#[tokio::test]
async fn answers_v1beta1_in_v1beta1() {
    let admitter = admitter(accounts());
    let body = review("admission.k8s.io/v1beta1", "CREATE", pod()).to_string();
    let (_, response) = send(&admitter, body.as_bytes()).await;
    assert_eq!(response["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(response["response"]["uid"], "uid-1");
    apply_patch(&response, &pod());
}

#[tokio::test]
async fn an_already_mutated_pod_gets_no_patch() {
    let admitter = admitter(accounts());
    let (_, first) = send(
        &admitter,
        review("admission.k8s.io/v1", "CREATE", pod())
            .to_string()
            .as_bytes(),
    )
    .await;
    let mutated = apply_patch(&first, &pod());
    let (_, second) = send(
        &admitter,
        review("admission.k8s.io/v1", "CREATE", mutated)
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(second["response"]["allowed"], true);
    assert!(second["response"].get("patch").is_none());
    assert!(second["response"].get("patchType").is_none());
}

#[tokio::test]
async fn admits_other_operations_and_kinds_untouched() {
    let admitter = admitter(accounts());
    let mut not_a_pod = review("admission.k8s.io/v1", "CREATE", json!({"kind": "Binding"}));
    not_a_pod["request"]["kind"]["kind"] = json!("Binding");
    let mut subresource = review("admission.k8s.io/v1", "CREATE", pod());
    subresource["request"]["subResource"] = json!("ephemeralcontainers");
    for body in [
        review("admission.k8s.io/v1", "UPDATE", pod()),
        not_a_pod,
        subresource,
    ] {
        let (status, response) = send(&admitter, body.to_string().as_bytes()).await;
        assert_eq!(status, 200);
        assert_eq!(response["response"]["allowed"], true);
        assert!(response["response"].get("patch").is_none());
    }
}

#[tokio::test]
async fn malformed_bodies_get_400_with_a_clear_message() {
    let admitter = admitter(accounts());
    let cases: [(&[u8], &str, &str); 8] = [
        (b"", "request body is empty", ""),
        (b"not json", "not valid JSON", ""),
        (
            b"{\"apiVersion\":\"admission.k8s.io/v1\",",
            "not valid JSON",
            "",
        ),
        (
            b"{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}",
            "has no request",
            "",
        ),
        (
            b"{\"apiVersion\":\"admission.k8s.io/v2\",\"request\":{\"uid\":\"u\"}}",
            "unsupported apiVersion",
            "u",
        ),
        (
            b"{\"kind\":\"Pod\",\"request\":{\"uid\":\"u\"}}",
            "unsupported kind",
            "u",
        ),
        (
            b"{\"request\":{\"uid\":\"u\",\"operation\":7}}",
            "not a valid AdmissionReview",
            "u",
        ),
        (
            b"{\"request\":{\"operation\":\"CREATE\"}}",
            "has no uid",
            "",
        ),
    ];
    for (body, message, uid) in cases {
        let (status, response) = send(&admitter, body).await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(body));
        assert_eq!(response["kind"], "AdmissionReview");
        assert_eq!(response["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(response["response"]["uid"], uid);
        assert_eq!(response["response"]["allowed"], false);
        assert_eq!(response["response"]["status"]["code"], 400);
        let text = response["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(text.contains(message), "{text:?} !~ {message:?}");
    }
}

#[tokio::test]
async fn bad_objects_are_denied_with_the_request_uid() {
    let admitter = admitter(accounts());
    for (object, message) in [
        (Value::Null, "has no object"),
        (json!([1, 2]), "not a valid Pod"),
        (json!({"spec": {"containers": "x"}}), "not a valid Pod"),
        (
            json!({"metadata": {"name": "x", "namespace": "ns"}}),
            "no spec",
        ),
    ] {
        let body = review("admission.k8s.io/v1beta1", "CREATE", object).to_string();
        let (status, response) = send(&admitter, body.as_bytes()).await;
        assert_eq!(status, 200);
        assert_eq!(response["apiVersion"], "admission.k8s.io/v1beta1");
        assert_eq!(response["response"]["uid"], "uid-1");
        assert_eq!(response["response"]["allowed"], false);
        assert_eq!(response["response"]["status"]["code"], 400);
        assert_eq!(response["response"]["status"]["reason"], "BadRequest");
        let text = response["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(text.contains(message), "{text:?} !~ {message:?}");
    }
}

#[tokio::test]
async fn missing_service_account_is_a_400_naming_it() {
    let admitter = admitter(accounts());
    let mut object = pod();
    object["spec"]["serviceAccountName"] = json!("ghost");
    let (_, response) = send(
        &admitter,
        review("admission.k8s.io/v1", "CREATE", object)
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(response["response"]["status"]["code"], 400);
    let text = response["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("ns/ghost"), "{text}");
}

#[tokio::test]
async fn unreachable_api_server_is_a_500() {
    let admitter = admitter(FakeServiceAccounts {
        down: true,
        ..accounts()
    });
    let (_, response) = send(
        &admitter,
        review("admission.k8s.io/v1", "CREATE", pod())
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(response["response"]["allowed"], false);
    assert_eq!(response["response"]["status"]["code"], 500);
    assert_eq!(response["response"]["status"]["reason"], "InternalError");
}

#[tokio::test(start_paused = true)]
async fn a_slow_lookup_is_answered_inside_the_budget() {
    let admitter = admitter(FakeServiceAccounts {
        delay: Some(Duration::from_secs(60)),
        ..accounts()
    });
    let body = review("admission.k8s.io/v1", "CREATE", pod()).to_string();
    let started = tokio::time::Instant::now();
    let reply = admitter
        .admit(body.as_bytes(), Some(Duration::from_secs(5)))
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    let response: Value = serde_json::from_slice(&reply.body).expect("json");
    assert_eq!(response["response"]["status"]["code"], 500);
}

#[tokio::test]
async fn uses_the_pod_namespace_when_the_request_has_none() {
    let admitter = admitter(accounts());
    let mut body = review("admission.k8s.io/v1", "CREATE", pod());
    body["request"]["namespace"] = json!("");
    let (_, response) = send(&admitter, body.to_string().as_bytes()).await;
    assert_eq!(response["response"]["allowed"], true);
}

#[tokio::test]
async fn warnings_reach_the_response() {
    let mut accounts = accounts();
    accounts.accounts.insert(
        ("ns".into(), "bare".into()),
        Arc::new(ServiceAccountMeta {
            namespace: "ns".into(),
            name: "bare".into(),
            annotations: Default::default(),
        }),
    );
    let admitter = admitter(accounts);
    let mut object = pod();
    object["spec"]["serviceAccountName"] = json!("bare");
    let (_, response) = send(
        &admitter,
        review("admission.k8s.io/v1", "CREATE", object)
            .to_string()
            .as_bytes(),
    )
    .await;
    let warnings = response["response"]["warnings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0]
        .as_str()
        .unwrap_or_default()
        .contains("client-id"));
}

#[tokio::test]
async fn discovery_decides_native_or_classic_sidecars() {
    let mut object = pod();
    object["metadata"]["annotations"] =
        json!({"azure.workload.identity/inject-proxy-sidecar": "true"});
    let body = review("admission.k8s.io/v1", "CREATE", object.clone()).to_string();
    for (native, field) in [(true, "initContainers"), (false, "containers")] {
        let admitter =
            admitter(accounts()).with_discovery(crate::k8s::discovery::Discovery::fixed(native));
        let (_, response) = send(&admitter, body.as_bytes()).await;
        let patched = apply_patch(&response, &object);
        assert_eq!(
            patched["spec"][field][0]["name"], "azwi-proxy",
            "native={native}"
        );
    }
}
