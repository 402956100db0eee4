//! `serve` with self-managed certificates (the default): the real wiring creates the Secret, publishes
//! the CA, becomes ready, and answers admission requests over TLS trusting the published `caBundle`.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/rotation.rs"]
mod rotation;
#[path = "support/tls.rs"]
mod tls_support;

use std::time::Duration;

use azwi_webhook::app::{self, BoundListeners};
use azwi_webhook::config::{LogLevel, MetricsBackend, RbacCheck, ServeConfig, TlsMinVersion};
use azwi_webhook::settings::{ProxySettings, Settings};
use fake_apiserver::{Endpoint, FakeApiServer, Outage};
use rotation::{MWC, NAMESPACE, SERVER_NAME};
use serde_json::json;
use tls_support::{eventually, get_plain, request, ClientOpts, Http};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_manages_its_own_certificates_and_is_ready_only_once_published() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("ns", "workload", &[]);
    fake.add_webhook_configuration(MWC, &["mutation.azure-workload-identity.io"]);
    // API server unreachable at start: the webhook must come up unready, not crash.
    fake.set_outage(Outage::Refuse).await;

    let webhook = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let health = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    webhook.set_nonblocking(true).expect("nonblocking");
    health.set_nonblocking(true).expect("nonblocking");
    let addr = webhook.local_addr().expect("addr");
    let health_addr = health.local_addr().expect("addr");
    let empty_dir = tempfile::tempdir().expect("tempdir");
    let config = ServeConfig {
        webhook_addr: addr,
        webhook_cert_dir: empty_dir.path().to_path_buf(),
        disable_cert_rotation: false,
        tls_min_version: TlsMinVersion::V1_3,
        client_ca_file: None,
        health_addr,
        metrics_addr: "127.0.0.1:0".parse().expect("addr"),
        metrics_backend: MetricsBackend::Prometheus,
        log_level: LogLevel::Unset,
        shutdown_delay: Duration::from_millis(50),
        rbac_check: RbacCheck::Deny,
        pod_namespace: NAMESPACE.into(),
    };
    let settings = Settings {
        audience: "api://AzureADTokenExchange".into(),
        tenant_id: "tenant-1".into(),
        authority_host: "https://login.microsoftonline.com/".into(),
        identity_binding: None,
        proxy: ProxySettings::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app::serve(
        config,
        settings,
        fake.config(),
        BoundListeners { webhook, health },
        async move {
            let _ = stopped.await;
        },
    ));

    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = get_plain(health_addr, "/readyz").await.map(|(s, _)| s).ok();
    assert_ne!(status, Some(200), "ready without a certificate");
    assert!(!task.is_finished());

    fake.end_outage().await;
    // The rotator retries every 5 s after a failure.
    let ready = eventually(Duration::from_secs(15), || async {
        matches!(get_plain(health_addr, "/readyz").await, Ok((200, _)))
    })
    .await;
    assert!(ready, "never became ready");
    assert_eq!(fake.count(Endpoint::CreateSecret), 1);
    let bundle = fake.ca_bundles(MWC)[0].clone().expect("caBundle published");

    let mut opts = ClientOpts::new(&String::from_utf8_lossy(&bundle), Http::V2);
    opts.server_name = SERVER_NAME.to_owned();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "ns", "operation": "CREATE",
            "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
                       "spec": {"serviceAccountName": "workload", "containers": [{"name": "c", "image": "i"}]}}
        }
    });
    let reply = request(
        addr,
        &opts,
        "POST",
        "/mutate-v1-pod",
        serde_json::to_vec(&review).expect("json"),
    )
    .await
    .expect("TLS request trusting the published caBundle");
    assert_eq!(reply.status, 200);

    let _ = stop.send(());
    let result = tokio::time::timeout(Duration::from_secs(10), task).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "{result:?}");
}
