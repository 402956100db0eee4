//! `--client-ca-file` through the real `serve` wiring: only a client certificate signed by the
//! configured CA, for client authentication, gets an admission answer; everything else fails the
//! TLS handshake and does not disturb the replica (docs/reliability.md shows the kube-apiserver
//! side of the configuration).

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/app.rs"]
mod test_app;
#[path = "support/tls.rs"]
mod tls_support;

use std::time::Duration;

use fake_apiserver::FakeApiServer;
use serde_json::{json, Value};
use test_app::TestApp;
use tls_support::{generate_ca_and_leaf, request, ClientOpts, Http, Leaf, TestCa, TestPki};

const PATH: &str = "/mutate-v1-pod?timeout=10s";

fn review() -> Vec<u8> {
    test_app::pod_review(
        "admission.k8s.io/v1",
        "uid-mtls",
        &json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "ns",
                         "labels": {"azure.workload.identity/use": "true"}},
            "spec": {"serviceAccountName": "workload",
                     "containers": [{"name": "app", "image": "app"}]}
        }),
    )
}

struct Running {
    app: TestApp,
    pki: TestPki,
    client_ca: TestCa,
    _fake: FakeApiServer,
}

/// Serving certificate from one CA, client certificates from another (as in a cluster, where the
/// API server's webhook client certificate is not issued by the webhook's serving CA).
async fn start() -> Running {
    let fake = FakeApiServer::start_with_workload().await;
    let pki = generate_ca_and_leaf(&["localhost"]);
    let client_ca = TestCa::new("kube-apiserver webhook client ca");
    let ca_file = pki.path().join("client-ca.crt");
    std::fs::write(&ca_file, &client_ca.pem).expect("write client ca");
    let mut config = test_app::serve_config(pki.path(), true, "azure-workload-identity-system");
    config.client_ca_file = Some(ca_file);
    let app = TestApp::start(config, test_app::settings(), fake.config());
    assert!(app.wait_ready(Duration::from_secs(10)).await, "not ready");
    Running {
        app,
        pki,
        client_ca,
        _fake: fake,
    }
}

fn opts(running: &Running, http: Http, cert: Option<Leaf>) -> ClientOpts {
    let mut opts = ClientOpts::new(&running.pki.ca.pem, http);
    opts.client_cert = cert;
    opts
}

async fn assert_refused(running: &Running, what: &str, cert: Option<Leaf>) {
    for http in [Http::V2, Http::V1] {
        let result = request(
            running.app.addr,
            &opts(running, http, cert.clone()),
            "POST",
            PATH,
            review(),
        )
        .await;
        match result {
            Err(_) => {}
            Ok(reply) => panic!("{what} over {http:?} was served: {}", reply.status),
        }
    }
}

async fn assert_served(running: &Running, cert: &Leaf) {
    for http in [Http::V2, Http::V1] {
        let reply = request(
            running.app.addr,
            &opts(running, http, Some(cert.clone())),
            "POST",
            PATH,
            review(),
        )
        .await
        .unwrap_or_else(|e| panic!("trusted client over {http:?} refused: {e}"));
        assert_eq!(reply.status, 200);
        let body: Value = serde_json::from_slice(&reply.body).expect("json");
        assert_eq!(body["response"]["uid"], "uid-mtls");
        assert_eq!(body["response"]["allowed"], true);
        assert!(body["response"]["patch"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn only_clients_with_a_certificate_from_the_client_ca_are_served() {
    let running = start().await;
    let trusted = running.client_ca.issue_client("kube-apiserver");

    assert_served(&running, &trusted).await;
    assert_refused(&running, "a client without a certificate", None).await;
    let stranger = TestCa::new("another ca").issue_client("kube-apiserver");
    assert_refused(&running, "a certificate from another CA", Some(stranger)).await;
    // Signed by the serving CA, which is not the client CA: still a stranger.
    let serving_ca_client = running.pki.ca.issue_client("kube-apiserver");
    assert_refused(
        &running,
        "a certificate from the serving CA",
        Some(serving_ca_client),
    )
    .await;
    // The right CA but not issued for client authentication (serverAuth only).
    let wrong_usage = running.client_ca.issue_server(&["kube-apiserver"]);
    assert_refused(&running, "a serverAuth-only certificate", Some(wrong_usage)).await;

    // The refusals cost nothing: the trusted client is still served and the replica is ready.
    assert_served(&running, &trusted).await;
    assert_eq!(running.app.readyz().await, Some(200));
    running.app.stop().await;
}

#[tokio::test]
async fn probes_stay_plain_http_without_client_certificates() {
    let running = start().await;
    // The kubelet probes /readyz without any certificate: the client CA guards only admission.
    let (status, body) = tls_support::get_plain(running.app.health_addr, "/readyz")
        .await
        .expect("probe");
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, _) = tls_support::get_plain(running.app.metrics_addr, "/metrics")
        .await
        .expect("scrape");
    assert_eq!(status, 200);
    running.app.stop().await;
}
