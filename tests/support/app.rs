//! Runs the real `app::serve` wiring on 127.0.0.1:0 for integration tests.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use azwi_webhook::app::{self, BoundListeners, StartupError};
use azwi_webhook::config::{LogLevel, ServeConfig, TlsMinVersion};
use azwi_webhook::mutate::settings::RbacCheck;
use azwi_webhook::mutate::settings::{ClusterCa, IdentityBinding, ProxySettings, Settings};
use serde_json::{json, Value};

/// A running webhook and the means to stop it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub health_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), StartupError>>,
}

/// Workload-identity settings with the cluster tenant `tenant-1`.
pub fn settings() -> Settings {
    Settings {
        audience: "api://AzureADTokenExchange".into(),
        tenant_id: "tenant-1".into(),
        authority_host: "https://login.microsoftonline.com/".into(),
        identity_binding: None,
        proxy: ProxySettings::default(),
    }
}

/// [`settings`] with identity binding on (switch `azure.workload.identity/use-identity-binding`),
/// a token proxy, and the cluster CA projected from ConfigMap `kube-root-ca.crt`.
pub fn identity_binding_settings() -> Settings {
    Settings {
        identity_binding: Some(IdentityBinding {
            switch_key: "azure.workload.identity/use-identity-binding".into(),
            audience: "api://AKSIdentityBinding".into(),
            token_proxy: "https://proxy.example:443".into(),
            sni_name: "sni.example".into(),
            ca: ClusterCa::ConfigMap("kube-root-ca.crt".into()),
        }),
        ..settings()
    }
}

/// A pod in namespace `ns` selected by the webhook, with service account `workload` (the one
/// `FakeApiServer::start_with_workload` holds) and one container `app`.
pub fn workload_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "web-", "namespace": "ns", "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": "workload", "containers": [{"name": "app", "image": "app"}]}
    })
}

fn listener() -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    listener
}

/// The defaults of `serve`, with certificates from `cert_dir` when `provided_certs` is set and
/// self-managed otherwise, and a short shutdown delay.
pub fn serve_config(cert_dir: &Path, provided_certs: bool, pod_namespace: &str) -> ServeConfig {
    let unbound: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    ServeConfig {
        webhook_addr: unbound,
        webhook_cert_dir: cert_dir.to_path_buf(),
        disable_cert_rotation: provided_certs,
        tls_min_version: TlsMinVersion::V1_3,
        client_ca_file: None,
        health_addr: unbound,
        metrics_addr: unbound,
        log_level: LogLevel::Unset,
        shutdown_delay: Duration::from_millis(50),
        shutdown_drain_timeout: Duration::from_secs(15),
        rbac_check: RbacCheck::Deny,
        max_in_flight_reviews: 1000,
        pod_namespace: pod_namespace.into(),
        kubeconfig: None,
        ignored_flags: Vec::new(),
    }
}

impl TestApp {
    /// Starts `serve` on fresh loopback ports; returns at once (not waiting for readiness).
    pub fn start(mut config: ServeConfig, settings: Settings, kube: kube::Config) -> Self {
        let (webhook, health, metrics) = (listener(), listener(), listener());
        let addr = webhook.local_addr().expect("addr");
        let health_addr = health.local_addr().expect("addr");
        let metrics_addr = metrics.local_addr().expect("addr");
        config.webhook_addr = addr;
        config.health_addr = health_addr;
        config.metrics_addr = metrics_addr;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app::serve(
            config,
            settings,
            kube,
            BoundListeners {
                webhook,
                health,
                metrics,
            },
            async move {
                let _ = stopped.await;
            },
        ));
        TestApp {
            addr,
            health_addr,
            metrics_addr,
            stop: Some(stop),
            task,
        }
    }

    /// `GET /readyz` status, or `None` when the health listener does not answer.
    pub async fn readyz(&self) -> Option<u16> {
        crate::tls_support::get_plain(self.health_addr, "/readyz")
            .await
            .ok()
            .map(|(status, _)| status)
    }

    pub async fn wait_ready(&self, within: Duration) -> bool {
        crate::tls_support::eventually(within, || async { self.readyz().await == Some(200) }).await
    }

    /// Scrapes `/metrics` and sums the samples of `family` carrying every `label="value"` given.
    pub async fn metric(&self, family: &str, labels: &[&str]) -> u64 {
        crate::tls_support::scrape_metric(self.metrics_addr, family, labels).await
    }

    /// Posts an AdmissionReview body to the admission path over TLS (trusting `ca_pem`) with a 10 s
    /// budget; returns the HTTP status and the parsed JSON answer.
    pub async fn review(
        &self,
        ca_pem: &str,
        http: crate::tls_support::Http,
        body: &[u8],
    ) -> (u16, Value) {
        let (status, answer, _) =
            crate::tls_support::post(self.addr, ca_pem, "/mutate-v1-pod?timeout=10s", body, http)
                .await
                .expect("request");
        let parsed = serde_json::from_slice(&answer)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&answer)));
        (status, parsed)
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Triggers shutdown and asserts `serve` returns `Ok` promptly.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task");
        assert!(result.is_ok(), "{result:?}");
    }
}

/// An AdmissionReview for creating `object` in namespace `ns`.
pub fn pod_review(api_version: &str, uid: &str, object: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": api_version, "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "ns", "operation": "CREATE", "object": object
        }
    }))
    .expect("json")
}

/// `object` with the JSON Patch of an admission `response` applied.
pub fn apply_patch(response: &Value, object: &Value) -> Value {
    use base64::Engine;
    let encoded = response["response"]["patch"].as_str().expect("a patch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("patch");
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &patch).expect("applies");
    patched
}

/// VmRSS of this process in KiB (a test's server and clients together).
pub fn rss_kib() -> u64 {
    status_kib("VmRSS")
}

/// VmHWM: the highest VmRSS this process reached.
pub fn peak_rss_kib() -> u64 {
    status_kib("VmHWM")
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}
