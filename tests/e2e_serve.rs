//! End to end: the real `serve` wiring on 127.0.0.1:0 with certificates generated here, answering
//! AdmissionReviews over TLS (HTTP/2 and HTTP/1.1), with service accounts read through the real kube
//! client from an in-process fake API server.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/app.rs"]
mod test_app;
#[path = "support/tls.rs"]
mod tls_support;

use std::time::Duration;

use fake_apiserver::FakeApiServer;
use serde_json::{json, Value};
use test_app::{apply_patch as apply, workload_pod as pod, TestApp};
use tls_support::{generate_ca_and_leaf, get_plain, post, Http, TestPki};

struct Running {
    app: TestApp,
    pki: TestPki,
    fake: FakeApiServer,
}

async fn start() -> Running {
    let fake = FakeApiServer::start_with_workload().await;
    let pki = generate_ca_and_leaf(&["localhost"]);
    let config = test_app::serve_config(pki.path(), true, "azure-workload-identity-system");
    let app = TestApp::start(config, test_app::settings(), fake.config());
    assert!(
        app.wait_ready(Duration::from_secs(10)).await,
        "webhook never became ready"
    );
    Running { app, pki, fake }
}

fn review(api_version: &str, uid: &str, object: &Value) -> Vec<u8> {
    test_app::pod_review(api_version, uid, object)
}

async fn admit(running: &Running, http: Http, body: Vec<u8>) -> Value {
    let (status, review) = running.app.review(&running.pki.ca.pem, http, &body).await;
    assert_eq!(status, 200, "{review}");
    review
}

async fn stop(running: Running) {
    running.app.stop().await;
}

#[tokio::test]
async fn mutates_over_http2_and_http1_with_the_real_kube_client() {
    let running = start().await;
    for (http, version) in [
        (Http::V2, "admission.k8s.io/v1"),
        (Http::V1, "admission.k8s.io/v1beta1"),
    ] {
        let response = admit(&running, http, review(version, "uid-a", &pod())).await;
        assert_eq!(response["apiVersion"], version);
        assert_eq!(response["response"]["uid"], "uid-a");
        assert_eq!(response["response"]["allowed"], true);
        let patched = apply(&response, &pod());
        let env = &patched["spec"]["containers"][0]["env"];
        assert_eq!(
            env[0],
            json!({"name": "AZURE_CLIENT_ID", "value": "client-1"})
        );
        assert_eq!(
            env[1],
            json!({"name": "AZURE_TENANT_ID", "value": "tenant-1"})
        );
    }
    // Served from the watch cache: no per-pod GET.
    assert_eq!(
        running
            .fake
            .count(fake_apiserver::Endpoint::GetServiceAccount),
        0
    );
    let (status, scrape) = get_plain(running.app.metrics_addr, "/metrics")
        .await
        .expect("scrape");
    assert_eq!(status, 200);
    for series in [
        "azwi_admission_requests_total{outcome=\"mutated\",reason=\"none\"} 2",
        "azwi_mutation_request_count{namespace=\"ns\"} 2",
        "azwi_service_account_lookups_total{result=\"hit\",source=\"cache\"} 2",
        "azwi_service_account_cache_objects ",
        "azwi_build_info{build_date=\"",
        "azwi_tls_certificate_expiry_timestamp_seconds ",
    ] {
        assert!(scrape.contains(series), "missing {series} in\n{scrape}");
    }
    stop(running).await;
}

#[tokio::test]
async fn reinvocation_with_the_mutated_pod_gets_no_patch() {
    let running = start().await;
    let first = admit(
        &running,
        Http::V2,
        review("admission.k8s.io/v1", "uid-1", &pod()),
    )
    .await;
    let mut mutated = apply(&first, &pod());
    // What the API server does between invocations: default the volume, fill in the name.
    mutated["spec"]["volumes"][0]["projected"]["defaultMode"] = json!(420);
    mutated["metadata"]["name"] = json!("web-x7k2p");
    let second = admit(
        &running,
        Http::V2,
        review("admission.k8s.io/v1", "uid-2", &mutated),
    )
    .await;
    assert_eq!(second["response"]["uid"], "uid-2");
    assert_eq!(second["response"]["allowed"], true);
    assert!(second["response"].get("patch").is_none(), "{second}");
    stop(running).await;
}

#[tokio::test]
async fn missing_service_account_and_api_outage_are_denied_with_the_right_codes() {
    let running = start().await;
    let mut ghost = pod();
    ghost["spec"]["serviceAccountName"] = json!("ghost");
    let response = admit(
        &running,
        Http::V2,
        review("admission.k8s.io/v1", "uid-g", &ghost),
    )
    .await;
    assert_eq!(response["response"]["allowed"], false);
    assert_eq!(response["response"]["status"]["code"], 400);
    assert!(response["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("ns/ghost"));

    running
        .fake
        .set_outage(fake_apiserver::Outage::Refuse)
        .await;
    // The cached service account is still served while the API server is down...
    let response = admit(
        &running,
        Http::V2,
        review("admission.k8s.io/v1", "uid-o", &pod()),
    )
    .await;
    assert_eq!(response["response"]["allowed"], true);
    // ...an uncached one cannot be looked up: 500, retryable.
    let mut uncached = pod();
    uncached["spec"]["serviceAccountName"] = json!("created-during-outage");
    let response = admit(
        &running,
        Http::V2,
        review("admission.k8s.io/v1", "uid-u", &uncached),
    )
    .await;
    assert_eq!(response["response"]["allowed"], false);
    assert_eq!(response["response"]["status"]["code"], 500);
    running.fake.end_outage().await;
    stop(running).await;
}

#[tokio::test]
async fn malformed_body_over_tls_gets_400_and_the_server_keeps_serving() {
    let running = start().await;
    let (status, body, _) = post(
        running.app.addr,
        &running.pki.ca.pem,
        "/mutate-v1-pod",
        b"{not json",
        Http::V2,
    )
    .await
    .expect("request");
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["kind"], "AdmissionReview");
    let response = admit(
        &running,
        Http::V2,
        review("admission.k8s.io/v1", "uid-after", &pod()),
    )
    .await;
    assert_eq!(response["response"]["allowed"], true);
    stop(running).await;
}

#[tokio::test]
async fn identity_binding_pods_need_rbac_to_use_their_client_id() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account(
        "ns",
        "granted",
        &[("azure.workload.identity/client-id", "cid-granted")],
    );
    fake.add_service_account(
        "ns",
        "refused",
        &[("azure.workload.identity/client-id", "cid-refused")],
    );
    fake.add_rule(
        fake_apiserver::RbacRule::allow()
            .user("system:serviceaccount:ns:granted")
            .verb("use-managed-identity")
            .api_group("cid.wi.aks.azure.com")
            .resource("cid-granted"),
    );
    let pki = generate_ca_and_leaf(&["localhost"]);
    let config = test_app::serve_config(pki.path(), true, "azure-workload-identity-system");
    let app = TestApp::start(config, test_app::identity_binding_settings(), fake.config());
    assert!(app.wait_ready(Duration::from_secs(10)).await);
    let running = Running { app, pki, fake };

    let mut granted = pod();
    granted["metadata"]["annotations"] =
        json!({"azure.workload.identity/use-identity-binding": "true"});
    granted["spec"]["serviceAccountName"] = json!("granted");
    let response = admit(
        &running,
        Http::V2,
        review("admission.k8s.io/v1", "uid-g", &granted),
    )
    .await;
    assert_eq!(response["response"]["allowed"], true, "{response}");
    let patched = apply(&response, &granted);
    let token = &patched["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["audience"], "api://AKSIdentityBinding");

    let mut refused = granted.clone();
    refused["spec"]["serviceAccountName"] = json!("refused");
    let response = admit(
        &running,
        Http::V2,
        review("admission.k8s.io/v1", "uid-r", &refused),
    )
    .await;
    assert_eq!(response["response"]["allowed"], false);
    assert_eq!(response["response"]["status"]["code"], 403);
    let message = response["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("ns/refused") && message.contains("cid-refused"),
        "{message}"
    );

    // A pod without identity binding is not checked.
    let mut plain = pod();
    plain["spec"]["serviceAccountName"] = json!("refused");
    let response = admit(
        &running,
        Http::V2,
        review("admission.k8s.io/v1", "uid-p", &plain),
    )
    .await;
    assert_eq!(response["response"]["allowed"], true);
    assert_eq!(
        running
            .fake
            .count(fake_apiserver::Endpoint::SubjectAccessReview),
        2
    );
    stop(running).await;
}
