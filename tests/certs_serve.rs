//! `serve` with self-managed certificates (the default): the real wiring creates the Secret, publishes
//! the CA, becomes ready, and answers admission requests over TLS trusting the published `caBundle`.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/rotation.rs"]
mod rotation;
#[path = "support/app.rs"]
mod test_app;
#[path = "support/tls.rs"]
mod tls_support;

use std::time::Duration;

use fake_apiserver::{Endpoint, FakeApiServer, Outage};
use rotation::{MWC, NAMESPACE, SERVER_NAME};
use serde_json::json;
use test_app::TestApp;
use tls_support::{get_plain, request, ClientOpts, Http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_manages_its_own_certificates_and_is_ready_only_once_published() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("ns", "workload", &[]);
    fake.add_webhook_configuration(MWC, &["mutation.azure-workload-identity.io"]);
    // API server unreachable at start: the webhook must come up unready, not crash.
    fake.set_outage(Outage::Refuse).await;

    let empty_dir = tempfile::tempdir().expect("tempdir");
    let config = test_app::serve_config(empty_dir.path(), false, NAMESPACE);
    let app = TestApp::start(config, test_app::settings(), fake.config());
    let (addr, health_addr) = (app.addr, app.health_addr);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = get_plain(health_addr, "/readyz").await.map(|(s, _)| s).ok();
    assert_ne!(status, Some(200), "ready without a certificate");
    assert!(!app.is_finished());

    fake.end_outage().await;
    // The rotator retries every 5 s after a failure.
    let ready = app.wait_ready(Duration::from_secs(15)).await;
    assert!(ready, "never became ready");
    assert_eq!(fake.count(Endpoint::CreateSecret), 1);
    let bundle = fake.ca_bundles(MWC)[0].clone().expect("caBundle published");

    let mut opts = ClientOpts::new(&String::from_utf8_lossy(&bundle), Http::V2);
    opts.server_name = SERVER_NAME.to_owned();
    let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
                        "spec": {"serviceAccountName": "workload", "containers": [{"name": "c", "image": "i"}]}});
    let reply = request(
        addr,
        &opts,
        "POST",
        "/mutate-v1-pod",
        test_app::pod_review("admission.k8s.io/v1", "u1", &object),
    )
    .await
    .expect("TLS request trusting the published caBundle");
    assert_eq!(reply.status, 200);

    app.stop().await;
}
