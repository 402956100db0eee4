//! Probe semantics of the real `serve` wiring, as documented in docs/operations.md:
//! `/readyz` = certificate loaded, handler serving, service-account cache synced (and not shutting
//! down), naming what is pending; `/healthz` = the process answers, and stays green while the API
//! server is down, so the kubelet never restarts a webhook that is only waiting on the API server.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/app.rs"]
mod test_app;
#[path = "support/tls.rs"]
mod tls_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fake_apiserver::{Endpoint, FakeApiServer, Outage};
use serde_json::{json, Value};
use test_app::TestApp;
use tls_support::{eventually, generate_ca_and_leaf, get_plain, post, Http, TestPki};

const DEADLINE: Duration = Duration::from_secs(10);

async fn probe(health: SocketAddr, path: &str) -> (u16, String) {
    get_plain(health, path)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Polls `/readyz` until its body is exactly `want` (trimmed); returns whether it got there.
async fn readyz_becomes(health: SocketAddr, want: &str) -> bool {
    eventually(DEADLINE, || async move {
        matches!(get_plain(health, "/readyz").await, Ok((_, body)) if body.trim() == want)
    })
    .await
}

fn fake_with_workload(fake: &FakeApiServer) {
    fake.add_service_account(
        "ns",
        "workload",
        &[("azure.workload.identity/client-id", "client-1")],
    );
}

fn review(uid: &str, service_account: &str) -> Vec<u8> {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "ns",
                     "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": service_account,
                 "containers": [{"name": "app", "image": "app"}]}
    });
    test_app::pod_review("admission.k8s.io/v1", uid, &pod)
}

async fn admit(app: &TestApp, pki: &TestPki, uid: &str, service_account: &str) -> Value {
    let (status, body, _) = post(
        app.addr,
        &pki.ca.pem,
        "/mutate-v1-pod?timeout=2s",
        &review(uid, service_account),
        Http::V2,
    )
    .await
    .expect("admission request");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(body["response"]["uid"], uid);
    body["response"].clone()
}

#[tokio::test]
async fn readyz_names_what_is_pending_until_certificate_and_cache_are_there() {
    let fake = FakeApiServer::start().await;
    fake_with_workload(&fake);
    // Hold the first list so the cache sync is observably pending.
    fake.delay_endpoint(Endpoint::ListServiceAccounts, Duration::from_secs(8));
    let pki = generate_ca_and_leaf(&["localhost"]);
    // Provided-certs mode with an empty directory: no serving certificate yet.
    let certs = tempfile::TempDir::new().expect("tempdir");
    let config = test_app::serve_config(certs.path(), true, "azure-workload-identity-system");
    let app = TestApp::start(config, test_app::settings(), fake.config());
    let health = app.health_addr;

    assert!(
        readyz_becomes(
            health,
            "not ready: serving certificate not loaded, service-account-cache-synced not ready"
        )
        .await,
        "{:?}",
        probe(health, "/readyz").await
    );
    assert_eq!(probe(health, "/healthz").await.0, 200);

    // The reloader polls the directory: the certificate appears, the cache sync is still held.
    for name in ["tls.crt", "tls.key"] {
        std::fs::copy(pki.path().join(name), certs.path().join(name)).expect("copy cert");
    }
    assert!(
        readyz_becomes(health, "not ready: service-account-cache-synced not ready").await,
        "{:?}",
        probe(health, "/readyz").await
    );
    assert_eq!(probe(health, "/readyz").await.0, 503);
    assert_eq!(probe(health, "/healthz").await.0, 200);

    assert!(app.wait_ready(Duration::from_secs(30)).await, "never ready");
    assert_eq!(probe(health, "/readyz").await, (200, "ok\n".into()));
    app.stop().await;
}

#[tokio::test]
async fn api_server_outage_keeps_liveness_and_readiness_green() {
    let fake = FakeApiServer::start().await;
    fake_with_workload(&fake);
    let pki = generate_ca_and_leaf(&["localhost"]);
    let config = test_app::serve_config(pki.path(), true, "azure-workload-identity-system");
    let app = TestApp::start(config, test_app::settings(), fake.config());
    assert!(app.wait_ready(DEADLINE).await, "never ready");
    let health = app.health_addr;

    for (n, outage) in [Outage::Refuse, Outage::Unavailable]
        .into_iter()
        .enumerate()
    {
        fake.set_outage(outage).await;
        // Long enough for the watch to notice and start backing off.
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            assert_eq!(probe(health, "/healthz").await.0, 200, "{outage:?}");
            let ready = probe(health, "/readyz").await;
            assert_eq!(ready.0, 200, "readiness flapped in {outage:?}: {}", ready.1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The cache keeps serving what it holds...
        let cached = admit(&app, &pki, &format!("cached-{n}"), "workload").await;
        assert_eq!(cached["allowed"], true, "{cached}");
        assert!(cached["patch"].is_string(), "{cached}");
        // ...and a miss is a prompt, transient (500) denial rather than a hang.
        let asked = Instant::now();
        let miss = admit(&app, &pki, &format!("miss-{n}"), "not-cached").await;
        assert_eq!(miss["allowed"], false, "{miss}");
        assert_eq!(miss["status"]["code"], 500, "{miss}");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{:?}",
            asked.elapsed()
        );
        fake.end_outage().await;
    }

    // After the outage the watch resumes: a service account created now is served.
    fake.add_service_account(
        "ns",
        "after-outage",
        &[("azure.workload.identity/client-id", "client-2")],
    );
    let after = admit(&app, &pki, "after", "after-outage").await;
    assert_eq!(after["allowed"], true, "{after}");
    assert_eq!(probe(health, "/readyz").await.0, 200);
    app.stop().await;
}
