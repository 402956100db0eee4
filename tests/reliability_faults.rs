//! API-server faults seen through the whole `serve` wiring (component-level cases live in
//! k8s_cache.rs, k8s_authz.rs, k8s_service_accounts.rs and certs_rotation.rs): an outage at
//! startup keeps the replica unready without ending `serve`; an outage mid-run still serves cached
//! service accounts and answers misses with 500 inside the request's budget.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/app.rs"]
mod test_app;
#[path = "support/tls.rs"]
mod tls_support;

use std::time::{Duration, Instant};

use fake_apiserver::{FakeApiServer, Outage};
use serde_json::{json, Value};
use test_app::TestApp;
use tls_support::{generate_ca_and_leaf, post, Http, TestPki};

fn review(sa: &str) -> Vec<u8> {
    test_app::pod_review(
        "admission.k8s.io/v1",
        "uid-fault",
        &json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "ns",
                         "labels": {"azure.workload.identity/use": "true"}},
            "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "image": "app"}]}
        }),
    )
}

async fn admit(app: &TestApp, pki: &TestPki, sa: &str, timeout: &str) -> (Value, Duration) {
    let started = Instant::now();
    let path = format!("/mutate-v1-pod?timeout={timeout}");
    let (status, body, _) = post(app.addr, &pki.ca.pem, &path, &review(sa), Http::V2)
        .await
        .expect("request");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    (
        serde_json::from_slice(&body).expect("json"),
        started.elapsed(),
    )
}

#[tokio::test]
async fn outage_at_startup_keeps_the_replica_unready_without_exiting_then_it_recovers() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account(
        "ns",
        "workload",
        &[("azure.workload.identity/client-id", "c")],
    );
    fake.set_outage(Outage::Unavailable).await;
    let pki = generate_ca_and_leaf(&["localhost"]);
    let config = test_app::serve_config(pki.path(), true, "azure-workload-identity-system");
    let app = TestApp::start(config, test_app::settings(), fake.config());

    // The health listener answers (no crash loop), but readiness waits for the cache's sync.
    let answered = tls_support::eventually(Duration::from_secs(5), || async {
        app.readyz().await == Some(503)
    })
    .await;
    assert!(answered, "readyz should answer 503 during the outage");
    assert!(
        !app.wait_ready(Duration::from_secs(2)).await,
        "ready during an outage"
    );
    assert!(
        !app.is_finished(),
        "serve exited because the API server was down"
    );

    fake.end_outage().await;
    assert!(
        app.wait_ready(Duration::from_secs(20)).await,
        "never recovered"
    );
    let (answer, _) = admit(&app, &pki, "workload", "10s").await;
    assert!(answer["response"]["patch"].is_string(), "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn outage_mid_run_serves_cached_accounts_and_fails_misses_within_the_budget() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account(
        "ns",
        "workload",
        &[("azure.workload.identity/client-id", "c")],
    );
    let pki = generate_ca_and_leaf(&["localhost"]);
    let config = test_app::serve_config(pki.path(), true, "azure-workload-identity-system");
    let app = TestApp::start(config, test_app::settings(), fake.config());
    assert!(app.wait_ready(Duration::from_secs(10)).await, "not ready");

    for outage in [Outage::Refuse, Outage::Unavailable] {
        fake.set_outage(outage).await;
        let (cached, _) = admit(&app, &pki, "workload", "2s").await;
        assert_eq!(cached["response"]["allowed"], true, "{cached}");
        assert!(cached["response"]["patch"].is_string(), "{cached}");

        let (miss, took) = admit(&app, &pki, "not-cached", "2s").await;
        assert_eq!(miss["response"]["allowed"], false, "{miss}");
        assert_eq!(miss["response"]["status"]["code"], 500, "{miss}");
        assert!(
            took < Duration::from_secs(2),
            "a miss took {took:?} of a 2 s budget"
        );
        fake.end_outage().await;
    }
    // A slow API server: the miss still ends inside the budget (the handler answers at 80 % of it,
    // which leaves the client's handshakes 0.8 s).
    fake.delay(Duration::from_secs(10));
    let (miss, took) = admit(&app, &pki, "also-not-cached", "4s").await;
    assert_eq!(miss["response"]["status"]["code"], 500, "{miss}");
    assert!(
        took < Duration::from_secs(4),
        "a slow miss took {took:?} of a 4 s budget"
    );
    fake.delay(Duration::ZERO);
    app.stop().await;
}
