//! The real control plane of the end-to-end suite (started by `e2e/run.sh`, see `e2e/cluster.sh`):
//! kubectl against it, namespaces and service accounts, a MutatingWebhookConfiguration registered
//! like an admin would, and the released webhook binary running with the RBAC the manifests grant.
//!
//! Tests share one kube-apiserver and run in parallel, so each works in namespaces of its own and
//! registers its own webhook configuration, selecting only those namespaces.
// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::process::{start_serve, Running};
use super::tls_support::{eventually, generate_ca_and_leaf, metric_sum, TestPki};

/// Where the webhook's Service DNS name resolves to loopback for kube-apiserver (e2e/cluster.sh).
pub const WEBHOOK_NAMESPACE: &str = "azure-workload-identity-system";
pub const WEBHOOK_HOST: &str =
    "azure-wi-webhook-webhook-service.azure-workload-identity-system.svc";
/// The name the shipped RBAC lets the webhook patch (manifests/base/rbac.yaml).
pub const SHIPPED_WEBHOOK_CONFIG: &str = "azure-wi-webhook-mutating-webhook-configuration";
pub const SHIPPED_SECRET: &str = "azure-wi-webhook-server-cert";
pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";

fn env_path(name: &str) -> PathBuf {
    match std::env::var_os(name) {
        Some(value) if !value.is_empty() => PathBuf::from(value),
        _ => panic!(
            "{name} is not set: the end-to-end tests need the control plane that e2e/run.sh starts \
             (run `e2e/run.sh`, or `cargo nextest run --profile e2e` with the variables of \
             $STATE/env from `e2e/cluster.sh up $STATE`)"
        ),
    }
}

pub struct ControlPlane {
    pub kubeconfig: PathBuf,
    pub webhook_kubeconfig: PathBuf,
    pub admission_client_ca: PathBuf,
    pub webhook_bin: PathBuf,
    kubectl: PathBuf,
}

/// What a kubectl run printed.
pub struct Kubectl {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Kubectl {
    fn from(out: Output) -> Self {
        Self {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

static UNIQUE: AtomicU32 = AtomicU32::new(0);

/// A name no other test (process) of this run uses: `prefix-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

impl ControlPlane {
    pub fn from_env() -> Self {
        Self {
            kubeconfig: env_path("KUBECONFIG"),
            webhook_kubeconfig: env_path("AZWI_E2E_WEBHOOK_KUBECONFIG"),
            admission_client_ca: env_path("AZWI_E2E_ADMISSION_CLIENT_CA"),
            webhook_bin: env_path("AZWI_E2E_WEBHOOK_BIN"),
            kubectl: env_path("AZWI_E2E_BIN_DIR").join("kubectl"),
        }
    }

    /// kubectl as the cluster admin; `stdin` is fed to it (for `-f -`).
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Kubectl {
        let mut child = Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        if let Some(input) = stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes())
                .expect("write kubectl stdin");
        }
        child.wait_with_output().expect("kubectl output").into()
    }

    /// Where kubectl (and the rest of the control plane's binaries) live, for scripts' `PATH`.
    pub fn bin_dir(&self) -> &Path {
        self.kubectl.parent().expect("kubectl has a directory")
    }

    /// kubectl that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(args, stdin);
        assert!(
            out.success,
            "kubectl {args:?} failed:\n{}\n{}",
            out.stderr, out.stdout
        );
        out.stdout
    }

    /// `kubectl get ARGS -o json`, parsed.
    pub fn get(&self, args: &[&str]) -> Value {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.ok(&all, None)).expect("kubectl -o json")
    }

    /// Applies the pod `manifest` (JSON) and returns the pod as kube-apiserver stored it.
    pub fn create_pod(&self, manifest: &str) -> Value {
        self.ok(&["apply", "-f", "-"], Some(manifest));
        let pod: Value = serde_json::from_str(manifest).expect("pod manifest is JSON");
        let meta = &pod["metadata"];
        let (ns, name) = (meta["namespace"].as_str(), meta["name"].as_str());
        self.get(&["-n", ns.expect("namespace"), "pod", name.expect("name")])
    }

    /// Whether `kubectl get ARGS` finds the object.
    pub fn exists(&self, args: &[&str]) -> bool {
        let mut all = vec!["get"];
        all.extend_from_slice(args);
        let out = self.kubectl(&all, None);
        if !out.success {
            assert!(
                out.stderr.contains("NotFound"),
                "kubectl get {args:?}: {}",
                out.stderr
            );
        }
        out.success
    }

    /// A new namespace with a name of its own.
    pub fn namespace(&self, prefix: &str) -> String {
        let name = unique(prefix);
        self.ok(&["create", "namespace", &name], None);
        name
    }

    /// A service account with `annotations` (the admission chain refuses pods whose service account
    /// does not exist, and no controller creates `default` here).
    pub fn service_account(&self, namespace: &str, name: &str, annotations: &[(&str, &str)]) {
        self.ok(&["-n", namespace, "create", "serviceaccount", name], None);
        if !annotations.is_empty() {
            self.annotate_service_account(namespace, name, annotations);
        }
    }

    /// Sets (or replaces) annotations of an existing service account, as `kubectl annotate` does.
    pub fn annotate_service_account(
        &self,
        namespace: &str,
        name: &str,
        annotations: &[(&str, &str)],
    ) {
        let pairs: Vec<String> = annotations
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut args = vec![
            "-n",
            namespace,
            "annotate",
            "serviceaccount",
            name,
            "--overwrite",
        ];
        args.extend(pairs.iter().map(String::as_str));
        self.ok(&args, None);
    }

    /// The identity-binding grant: ClusterRole `use-mi-<client-id>` and its binding to the account.
    pub fn allow_managed_identity(&self, namespace: &str, service_account: &str, client_id: &str) {
        let role = format!("use-mi-{client_id}");
        let yaml = format!(
            r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: "{role}"}}
rules:
  - verbs: ["use-managed-identity"]
    apiGroups: ["cid.wi.aks.azure.com"]
    resources: ["{client_id}"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: "{role}-{namespace}-{service_account}"}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "{role}"}}
subjects:
  - {{kind: ServiceAccount, name: "{service_account}", namespace: "{namespace}"}}
"#
        );
        self.ok(&["apply", "-f", "-"], Some(&yaml));
    }

    /// Applies `configuration` (a rendered MutatingWebhookConfiguration) and waits until
    /// kube-apiserver calls `webhook` for pods in `probe_namespace`, which it must select.
    pub async fn register_rendered(
        &self,
        configuration: &Value,
        webhook: &E2eWebhook,
        probe_namespace: &str,
    ) -> Registration {
        self.service_account(probe_namespace, "probe", &[]);
        self.ok(&["apply", "-f", "-"], Some(&configuration.to_string()));
        let name = configuration["metadata"]["name"].as_str().expect("name");
        let registration = Registration::new(self, name, probe_namespace);
        registration.wait_active(self, webhook).await;
        registration
    }

    /// Registers `webhook` in a MutatingWebhookConfiguration as the shipped manifest does
    /// (v1, failurePolicy Fail, reinvocationPolicy IfNeeded, objectSelector on
    /// `azure.workload.identity/use`), reached by URL on loopback and limited to `namespaces`, and
    /// waits until kube-apiserver calls it.
    pub async fn register(
        &self,
        name: &str,
        webhook: &E2eWebhook,
        namespaces: &[&str],
    ) -> Registration {
        let registration =
            self.register_url(name, &webhook.url(), Some(webhook.ca_pem()), namespaces);
        registration.wait_active(self, webhook).await;
        registration
    }

    /// The same without waiting: `ca_bundle: None` leaves the bundle empty (a self-managed webhook
    /// fills it in).
    pub fn register_url(
        &self,
        name: &str,
        url: &str,
        ca_bundle: Option<&str>,
        namespaces: &[&str],
    ) -> Registration {
        let probe = self.namespace("probe");
        self.service_account(&probe, "probe", &[]);
        let mut selected: Vec<&str> = namespaces.to_vec();
        selected.push(&probe);
        self.ok(
            &["apply", "-f", "-"],
            Some(&webhook_configuration(name, url, ca_bundle, &selected)),
        );
        Registration::new(self, name, &probe)
    }
}

impl ControlPlane {
    /// What most scenarios start from: a webhook (provided certificates, `args`, `env`) registered
    /// for a new namespace named after `prefix`. Keep the registration alive for the whole test.
    pub async fn scenario(
        &self,
        prefix: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> (E2eWebhook, String, Registration) {
        let webhook = E2eWebhook::start(self, Certs::Provided, args, env).await;
        let ns = self.namespace(prefix);
        let registration = self.register(&unique(prefix), &webhook, &[&ns]).await;
        (webhook, ns, registration)
    }
}

/// A registered MutatingWebhookConfiguration, deleted when dropped: webhooks of a test that has
/// ended are gone, and a configuration pointing at them would fail every later pod it selects.
#[must_use = "the configuration is deleted when this is dropped"]
pub struct Registration {
    pub name: String,
    probe: String,
    kubectl: PathBuf,
    kubeconfig: PathBuf,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let _ = Command::new(&self.kubectl)
            .args([
                "delete",
                "mutatingwebhookconfiguration",
                &self.name,
                "--ignore-not-found",
            ])
            .env("KUBECONFIG", &self.kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Registration {
    /// The configuration `name`, probed in `probe` (a namespace it selects, with service account
    /// `probe`).
    fn new(cp: &ControlPlane, name: &str, probe: &str) -> Self {
        Self {
            name: name.to_owned(),
            probe: probe.to_owned(),
            kubectl: cp.kubectl.clone(),
            kubeconfig: cp.kubeconfig.clone(),
        }
    }

    /// Points the configuration at another URL (another replica), keeping its caBundle.
    pub fn set_url(&self, cp: &ControlPlane, url: &str) {
        let patch = serde_json::json!([
            {"op": "replace", "path": "/webhooks/0/clientConfig/url", "value": url}
        ]);
        cp.ok(
            &[
                "patch",
                "mutatingwebhookconfiguration",
                &self.name,
                "--type=json",
                "-p",
                &patch.to_string(),
            ],
            None,
        );
    }

    /// A dry-run pod in the probe namespace, as kubectl reports it.
    pub fn probe(&self, cp: &ControlPlane) -> Kubectl {
        let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"probe-",
            "labels":{"azure.workload.identity/use":"true"}},
            "spec":{"serviceAccountName":"probe","containers":[{"name":"c","image":"busybox"}]}}"#;
        cp.kubectl(
            &["-n", &self.probe, "create", "--dry-run=server", "-f", "-"],
            Some(pod),
        )
    }

    /// kube-apiserver loads webhook configurations through an informer, so a new one takes effect a
    /// moment later: dry-run pods in the probe namespace until one reaches the webhook.
    pub async fn wait_active(&self, cp: &ControlPlane, webhook: &E2eWebhook) {
        let before = webhook.reviews().await;
        let active = eventually(Duration::from_secs(30), || async {
            self.probe(cp);
            webhook.reviews().await > before
        })
        .await;
        assert!(
            active,
            "webhook configuration {} never took effect:\n{}",
            self.name,
            webhook.running.log()
        );
    }
}

/// The MutatingWebhookConfiguration of manifests/base, pointed at `url` and limited to `namespaces`.
pub fn webhook_configuration(
    name: &str,
    url: &str,
    ca_bundle: Option<&str>,
    namespaces: &[&str],
) -> String {
    use base64::Engine as _;
    let bundle = ca_bundle
        .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem))
        .unwrap_or_default();
    let namespaces = serde_json::to_string(namespaces).expect("json");
    format!(
        r#"apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: {name}
webhooks:
  - name: mutation.azure-workload-identity.io
    admissionReviewVersions: ["v1", "v1beta1"]
    clientConfig:
      url: "{url}"
      caBundle: "{bundle}"
    rules:
      - apiGroups: [""]
        apiVersions: ["v1"]
        resources: ["pods"]
        operations: ["CREATE"]
        scope: Namespaced
    objectSelector:
      matchLabels:
        azure.workload.identity/use: "true"
    namespaceSelector:
      matchExpressions:
        - key: kubernetes.io/metadata.name
          operator: In
          values: {namespaces}
    failurePolicy: Fail
    sideEffects: None
    matchPolicy: Equivalent
    reinvocationPolicy: IfNeeded
    timeoutSeconds: 10
"#
    )
}

/// How the webhook gets its serving certificate.
pub enum Certs {
    /// A CA and a leaf for [`WEBHOOK_HOST`] generated by the test (`--disable-cert-rotation`).
    Provided,
    /// Self-managed: the webhook creates or reuses the shipped Secret and publishes its CA.
    SelfManaged,
}

/// The released webhook binary, serving with the webhook service account's kubeconfig.
pub struct E2eWebhook {
    pub running: Running,
    pub pki: Option<TestPki>,
    _dir: TempDir,
}

impl E2eWebhook {
    /// Starts `azwi-webhook serve` with `args` and `env` on top of the tenant, the webhook's own
    /// kubeconfig and `POD_NAMESPACE` (at `--log-level=info` unless `args` sets one), and waits
    /// until it is ready.
    pub async fn start(
        cp: &ControlPlane,
        certs: Certs,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let dir = TempDir::new().expect("tempdir");
        let (pki, mut all_args) = match certs {
            Certs::Provided => {
                let pki = generate_ca_and_leaf(&[WEBHOOK_HOST]);
                let args = vec![
                    "--disable-cert-rotation".to_owned(),
                    format!("--webhook-cert-dir={}", pki.path().display()),
                ];
                (Some(pki), args)
            }
            Certs::SelfManaged => {
                let cert_dir = dir.path().join("certs");
                (
                    None,
                    vec![format!("--webhook-cert-dir={}", cert_dir.display())],
                )
            }
        };
        if !args.iter().any(|a| a.starts_with("--log-level")) {
            all_args.push("--log-level=info".to_owned());
        }
        all_args.push("--shutdown-delay=0s".to_owned());
        all_args.extend(args.iter().map(|a| a.to_string()));
        let mut all_env = vec![
            ("AZURE_TENANT_ID", TENANT),
            ("POD_NAMESPACE", WEBHOOK_NAMESPACE),
        ];
        all_env.extend_from_slice(env);
        Self::launch(cp, dir, pki, &all_args, &all_env).await
    }

    /// Starts `azwi-webhook serve` with exactly `args` (plus the listener addresses) and `env` plus
    /// the webhook's kubeconfig, e.g. as a rendered Deployment configures it.
    pub async fn launch<A: AsRef<OsStr>, K: AsRef<OsStr>, V: AsRef<OsStr>>(
        cp: &ControlPlane,
        dir: TempDir,
        pki: Option<TestPki>,
        args: &[A],
        env: &[(K, V)],
    ) -> Self {
        let mut all_env = vec![(OsStr::new("KUBECONFIG"), cp.webhook_kubeconfig.as_os_str())];
        all_env.extend(env.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        let running = start_serve(
            &cp.webhook_bin,
            dir.path(),
            args,
            &all_env,
            Duration::from_secs(60),
        )
        .await;
        Self {
            running,
            pki,
            _dir: dir,
        }
    }

    /// The URL kube-apiserver dials: the Service DNS name (mapped to loopback) and our port.
    pub fn url(&self) -> String {
        format!(
            "https://{WEBHOOK_HOST}:{}/mutate-v1-pod",
            self.running.webhook.port()
        )
    }

    /// The CA that signed the provided serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.pki.as_ref().expect("provided certificates").ca.pem
    }

    /// Admission reviews answered so far (`azwi_admission_requests_total`, all outcomes).
    pub async fn reviews(&self) -> u64 {
        self.metric("azwi_admission_requests_total", &[]).await
    }

    /// Sum of the samples of `family` whose labels include every `label="value"` of `labels`.
    pub async fn metric(&self, family: &str, labels: &[&str]) -> u64 {
        metric_sum(&self.running.metrics().await, family, labels)
    }
}

/// Reads a file the suite keeps beside the tests.
pub fn test_data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/e2e_data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
