//! End to end against a real kube-apiserver (built from pinned Go modules, started by `e2e/run.sh`):
//! the released webhook binary, registered by a real MutatingWebhookConfiguration and running with
//! the RBAC of `manifests/base/rbac.yaml`, admits pods that kubectl creates; every assertion is on
//! what kube-apiserver stored (or refused).
//!
//! Run with `e2e/run.sh` (nextest profile `e2e`); the default profile leaves this binary out.

#[path = "support/controlplane.rs"]
mod controlplane;
#[path = "support/process.rs"]
mod process;
#[path = "support/tls.rs"]
mod tls_support;

use std::time::Duration;

use controlplane::{test_data, unique, Certs, ControlPlane, E2eWebhook, TENANT};
use serde_json::{json, Value};
use tls_support::eventually;

const CLIENT_ID: &str = "9a3b1c2d-0000-4e5f-8a9b-0c1d2e3f4a5b";
const OTHER_CLIENT_ID: &str = "7f6e5d4c-1111-4b3a-9c8d-7e6f5a4b3c2d";
const SA_TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const TOKEN_PROXY: &str = "https://token-proxy.e2e.test:8443";
const SNI_NAME: &str = "token-proxy.e2e.test";
const MOUNT_PATH: &str = "/var/run/secrets/azure/wi";
const TOKEN_FILE: &str = "/var/run/secrets/azure/wi/token/azure-identity-token";
const CA_FILE: &str = "/var/run/secrets/azure/wi/ca-cert/ca.crt";
const AUTHORITY: &str = "https://login.microsoftonline.com/";

/// Identity-binding settings of the webhook; the CA source is added by each test.
fn identity_binding_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("AZURE_KUBERNETES_TOKEN_PROXY", TOKEN_PROXY),
        ("AZURE_KUBERNETES_SNI_NAME", SNI_NAME),
    ]
}

/// `name=value` of a container's env list (values only; references are not expected here).
fn env_of(container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .map(|env| {
            env.iter()
                .map(|e| {
                    let value = e["value"].as_str().unwrap_or_default();
                    (
                        e["name"].as_str().unwrap_or_default().to_owned(),
                        value.to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn azure_env(container: &Value) -> Vec<(String, String)> {
    env_of(container)
        .into_iter()
        .filter(|(name, _)| name.starts_with("AZURE_"))
        .collect()
}

/// What the webhook injects for `CLIENT_ID` and the cluster tenant, before any CA variable.
fn injected(identity_binding: bool) -> Vec<(String, String)> {
    let mut env = pairs(&[
        ("AZURE_CLIENT_ID", CLIENT_ID),
        ("AZURE_TENANT_ID", TENANT),
        ("AZURE_FEDERATED_TOKEN_FILE", TOKEN_FILE),
        ("AZURE_AUTHORITY_HOST", AUTHORITY),
    ]);
    if identity_binding {
        env.extend(pairs(&[
            ("AZURE_KUBERNETES_TOKEN_PROXY", TOKEN_PROXY),
            ("AZURE_KUBERNETES_SNI_NAME", SNI_NAME),
        ]));
    }
    env
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn container<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    pod["spec"][list]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no {list} {name} in {pod:#}"))
}

/// The webhook's projected volume (there must be exactly one).
fn reserved_volume(pod: &Value) -> &Value {
    let volumes: Vec<&Value> = pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| {
            v["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("azure-workload-identity-reserved-"))
        })
        .collect();
    assert_eq!(volumes.len(), 1, "one reserved volume: {pod:#}");
    volumes[0]
}

fn assert_token_source(volume: &Value, audience: &str) {
    let sources = volume["projected"]["sources"]
        .as_array()
        .expect("projected sources");
    assert!(
        sources.contains(&json!({"serviceAccountToken": {
            "audience": audience, "expirationSeconds": 3600, "path": "token/azure-identity-token"}})),
        "{volume:#}"
    );
}

fn assert_mounted(container: &Value, volume: &Value) {
    assert_eq!(
        our_mounts(container),
        vec![&json!({"name": volume["name"], "mountPath": MOUNT_PATH, "readOnly": true})],
        "{container:#}"
    );
}

fn assert_untouched(container: &Value) {
    assert!(azure_env(container).is_empty(), "{container:#}");
    assert!(our_mounts(container).is_empty(), "{container:#}");
}

/// The AKS guide, step by step as written, against the real API server; then the same pod for a
/// service account that has no ClusterRoleBinding.
#[tokio::test]
async fn aks_identity_binding_guide_as_written_then_an_unbound_service_account_is_refused() {
    let cp = ControlPlane::from_env();
    // The platform's part: a ClusterTrustBundle with the token proxy's CA, found by signer and label.
    let signer = "e2e.azwi.test/token-proxy";
    let selector = r#"{"matchLabels":{"e2e.azwi.test/bundle":"token-proxy"}}"#;
    let proxy_ca = tls_support::TestCa::new("token proxy CA").pem;
    cp.ok(
        &["apply", "-f", "-"],
        Some(
            &json!({
                "apiVersion": "certificates.k8s.io/v1", "kind": "ClusterTrustBundle",
                "metadata": {"name": "e2e.azwi.test:token-proxy:guide",
                             "labels": {"e2e.azwi.test/bundle": "token-proxy"}},
                "spec": {"signerName": signer, "trustBundle": proxy_ca}
            })
            .to_string(),
        ),
    );
    let mut env = identity_binding_env();
    env.push(("AZURE_KUBERNETES_CA_CTB_SIGNER_NAME", signer));
    env.push(("AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR", selector));
    let webhook = E2eWebhook::start(&cp, Certs::Provided, &[], &env).await;
    let _registered = cp.register(&unique("guide"), &webhook, &["demo"]).await;

    // The guide's names are fixed: a second run against the same control plane starts from scratch.
    // (The namespace stays: without kube-controller-manager a deleted namespace never goes away.)
    for kind in ["pod", "serviceaccount"] {
        cp.ok(
            &[
                "delete",
                kind,
                "demo",
                "demo-unbound",
                "-n",
                "demo",
                "--ignore-not-found",
            ],
            None,
        );
    }
    let out = run_guide(&cp);
    assert!(
        out.success,
        "the guide's steps failed:\n{}\n{}\n{}",
        out.stdout,
        out.stderr,
        webhook.running.log()
    );

    let pod = cp.get(&["-n", "demo", "pod", "demo"]);
    // kube-apiserver fills serviceAccountName from the deprecated field before admission.
    assert_eq!(pod["spec"]["serviceAccountName"], "demo", "{pod:#}");
    let app = container(&pod, "containers", "azure-sdk");
    assert_eq!(
        env_of(app),
        pairs(&[
            ("KEYVAULT_URL", "https://e2e-vault.vault.azure.net/"),
            ("SECRET_NAME", "e2e-secret"),
            ("AZURE_CLIENT_ID", CLIENT_ID),
            ("AZURE_TENANT_ID", SA_TENANT),
            ("AZURE_FEDERATED_TOKEN_FILE", TOKEN_FILE),
            ("AZURE_AUTHORITY_HOST", AUTHORITY),
            ("AZURE_KUBERNETES_TOKEN_PROXY", TOKEN_PROXY),
            ("AZURE_KUBERNETES_SNI_NAME", SNI_NAME),
            ("AZURE_KUBERNETES_CA_FILE", CA_FILE),
        ]),
        "the guide's seven variables after the pod's own: {pod:#}"
    );
    let volume = reserved_volume(&pod);
    assert_token_source(volume, "api://AKSIdentityBinding");
    let sources = volume["projected"]["sources"].as_array().expect("sources");
    assert!(
        sources.contains(&json!({"clusterTrustBundle": {
            "signerName": signer,
            "labelSelector": {"matchLabels": {"e2e.azwi.test/bundle": "token-proxy"}},
            "optional": false, "path": "ca-cert/ca.crt"}})),
        "the stored pod keeps the clusterTrustBundle projection: {volume:#}"
    );
    assert_mounted(app, volume);
    let rbac_calls = webhook
        .metric("azwi_rbac_checks_total", &["cached=\"false\""])
        .await;
    assert_eq!(rbac_calls, 1, "one SubjectAccessReview for the guide's pod");

    // The same pod for a service account annotated with the same identity but not bound to it.
    cp.service_account(
        "demo",
        "demo-unbound",
        &[("azure.workload.identity/client-id", CLIENT_ID)],
    );
    let manifest = test_data("aks-identity-binding-guide.sh")
        .split("kubectl apply -f - <<EOF\n")
        .nth(2)
        .and_then(|rest| rest.split("EOF").next())
        .expect("the guide's pod manifest")
        .replace("name: demo\n", "name: demo-unbound\n")
        .replace("serviceAccount: demo\n", "serviceAccount: demo-unbound\n")
        .replace("${KEYVAULT_URL}", "https://e2e-vault.vault.azure.net/")
        .replace("${KEY_VAULT_SECRET_NAME}", "e2e-secret");
    let refused = cp.kubectl(&["apply", "-f", "-"], Some(&manifest));
    assert!(
        !refused.success,
        "an unbound service account was admitted:\n{}",
        refused.stdout
    );
    for needle in ["demo-unbound", CLIENT_ID, "denied the request"] {
        assert!(
            refused.stderr.contains(needle),
            "{needle} not in: {}",
            refused.stderr
        );
    }
    assert!(
        !cp.exists(&["-n", "demo", "pod", "demo-unbound"]),
        "a refused pod was stored"
    );
}

fn run_guide(cp: &ControlPlane) -> controlplane::Kubectl {
    let script = test_data("aks-identity-binding-guide.sh");
    let path = format!(
        "{}:{}",
        cp.bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .env("KUBECONFIG", &cp.kubeconfig)
        .env("PATH", path)
        .env("MI_CLIENT_ID", CLIENT_ID)
        .env("MI_TENANT_ID", SA_TENANT)
        .env("KEYVAULT_URL", "https://e2e-vault.vault.azure.net/")
        .env("KEY_VAULT_SECRET_NAME", "e2e-secret")
        .output()
        .expect("bash");
    out.into()
}

/// A pod manifest in `namespace` for `service_account`, labelled for the webhook.
fn pod(
    namespace: &str,
    name: &str,
    service_account: &str,
    annotations: Value,
    spec: Value,
) -> String {
    let mut spec = spec;
    spec["serviceAccountName"] = json!(service_account);
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"azure.workload.identity/use": "true"},
                     "annotations": annotations},
        "spec": spec
    })
    .to_string()
}

/// Pod `app` asking for identity binding, for service account `bound`, which is created with the
/// client ID and the ClusterRoleBinding that allows it; returns the stored pod.
fn bound_identity_binding_pod(cp: &ControlPlane, ns: &str) -> Value {
    cp.service_account(
        ns,
        "bound",
        &[("azure.workload.identity/client-id", CLIENT_ID)],
    );
    cp.allow_managed_identity(ns, "bound", CLIENT_ID);
    cp.create_pod(&pod(
        ns,
        "app",
        "bound",
        json!({"azure.workload.identity/use-identity-binding": "true"}),
        json!({"containers": [busybox("app")]}),
    ))
}

/// Service account `workload` with client ID `CLIENT_ID` (no identity-binding grant).
fn workload_account(cp: &ControlPlane, ns: &str) {
    cp.service_account(
        ns,
        "workload",
        &[("azure.workload.identity/client-id", CLIENT_ID)],
    );
}

/// A pod with one container, `app`, and no annotations.
fn plain_pod(namespace: &str, name: &str, service_account: &str) -> String {
    pod(
        namespace,
        name,
        service_account,
        json!({}),
        json!({"containers": [busybox("app")]}),
    )
}

/// The `AZURE_*` variables of container `app`.
fn app_env(pod: &Value) -> Vec<(String, String)> {
    azure_env(container(pod, "containers", "app"))
}

/// The container's mounts at the webhook's path.
fn our_mounts(container: &Value) -> Vec<&Value> {
    container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["mountPath"] == MOUNT_PATH)
        .collect()
}

fn busybox(name: &str) -> Value {
    json!({"name": name, "image": "busybox"})
}

#[tokio::test]
async fn plain_workload_identity_with_init_containers_and_skip_containers() {
    let cp = ControlPlane::from_env();
    // At debug, the webhook says when a review body had to be decoded by serde_json because its
    // one-pass scanner declined it.
    let (webhook, ns, _registered) = cp.scenario("plain", &["--log-level=debug"], &[]).await;
    workload_account(&cp, &ns);

    let manifest = pod(
        &ns,
        "app",
        "workload",
        json!({"azure.workload.identity/skip-containers": "sidecar;init-skip"}),
        json!({"initContainers": [busybox("init"), busybox("init-skip")],
               "containers": [busybox("app"), busybox("sidecar")]}),
    );
    let pod = cp.create_pod(&manifest);

    let expected = injected(false);
    let volume = reserved_volume(&pod);
    assert_token_source(volume, "api://AzureADTokenExchange");
    assert_eq!(
        volume["projected"]["sources"].as_array().map(Vec::len),
        Some(1),
        "{volume:#}"
    );
    for (list, name) in [("initContainers", "init"), ("containers", "app")] {
        let c = container(&pod, list, name);
        assert_eq!(azure_env(c), expected, "{list} {name}: {pod:#}");
        assert_mounted(c, volume);
    }
    for (list, name) in [("initContainers", "init-skip"), ("containers", "sidecar")] {
        assert_untouched(container(&pod, list, name));
    }
    // No identity binding: no SubjectAccessReview.
    assert_eq!(webhook.metric("azwi_rbac_checks_total", &[]).await, 0);

    // kube-apiserver's own review of a pod `kubectl apply` created (its last-applied annotation
    // full of escapes) is read by the scanner: the fast path is the path real reviews take.
    let admitted = "\"pod\":\"app\"";
    let logged = eventually(Duration::from_secs(10), || {
        std::future::ready(webhook.running.log().contains(admitted))
    })
    .await;
    let log = webhook.running.log();
    assert!(logged, "no admission line for the pod:\n{log}");
    assert!(log.contains("\"level\":\"DEBUG\""), "not at debug:\n{log}");
    assert!(
        !log.contains("decoded by serde"),
        "the scanner declined the API server's review:\n{log}"
    );
}

/// The other two CA sources of identity binding (the guide covers ClusterTrustBundle): a ConfigMap in
/// the pod's namespace, and CA data injected as a variable.
#[tokio::test]
async fn identity_binding_with_a_config_map_ca_and_with_ca_data() {
    let cp = ControlPlane::from_env();
    let ca = tls_support::TestCa::new("token proxy CA").pem;

    let mut env = identity_binding_env();
    env.push(("AZURE_KUBERNETES_CA_CONFIGMAP_NAME", "token-proxy-ca"));
    let from_config_map = E2eWebhook::start(&cp, Certs::Provided, &[], &env).await;
    let mut env = identity_binding_env();
    env.push(("AZURE_KUBERNETES_CA_DATA", &ca));
    let from_data = E2eWebhook::start(&cp, Certs::Provided, &[], &env).await;

    for (webhook, kind) in [(&from_config_map, "configmap"), (&from_data, "data")] {
        let ns = cp.namespace(kind);
        let _registered = cp.register(&unique(kind), webhook, &[&ns]).await;
        let pod = bound_identity_binding_pod(&cp, &ns);
        let app = container(&pod, "containers", "app");
        let volume = reserved_volume(&pod);
        assert_token_source(volume, "api://AKSIdentityBinding");
        assert_mounted(app, volume);
        let sources = volume["projected"]["sources"].as_array().expect("sources");
        let mut expected = injected(true);
        if kind == "configmap" {
            expected.push(("AZURE_KUBERNETES_CA_FILE".into(), CA_FILE.into()));
            assert!(
                sources.contains(
                    &json!({"configMap": {"name": "token-proxy-ca", "optional": false,
                    "items": [{"key": "ca.crt", "path": "ca-cert/ca.crt"}]}})
                ),
                "{volume:#}"
            );
        } else {
            expected.push(("AZURE_KUBERNETES_CA_DATA".into(), ca.clone()));
            assert_eq!(sources.len(), 1, "CA data projects no file: {volume:#}");
        }
        assert_eq!(azure_env(app), expected, "{kind}: {pod:#}");
    }
}

/// `--dry-run=server` goes through the same admission: the same patch, warnings shown by kubectl,
/// nothing stored.
#[tokio::test]
async fn server_dry_run_admits_the_same_way_shows_warnings_and_stores_nothing() {
    let cp = ControlPlane::from_env();
    let (_webhook, ns, _registered) = cp.scenario("dryrun", &[], &[]).await;
    workload_account(&cp, &ns);

    // skip-containers naming a container the pod does not have is a warning, not a denial.
    let manifest = pod(
        &ns,
        "app",
        "workload",
        json!({"azure.workload.identity/skip-containers": "no-such-container"}),
        json!({"containers": [busybox("app")]}),
    );
    let dry = cp.kubectl(
        &["create", "--dry-run=server", "-o", "json", "-f", "-"],
        Some(&manifest),
    );
    assert!(dry.success, "{}", dry.stderr);
    assert!(
        dry.stderr.contains("Warning:") && dry.stderr.contains("no-such-container"),
        "kubectl shows the webhook's warning: {}",
        dry.stderr
    );
    let dry_pod: Value = serde_json::from_str(&dry.stdout).expect("json");
    assert!(
        !cp.exists(&["-n", &ns, "pod", "app"]),
        "a dry run stored the pod"
    );

    let real = cp.kubectl(&["create", "-o", "json", "-f", "-"], Some(&manifest));
    assert!(real.success, "{}", real.stderr);
    assert!(real.stderr.contains("no-such-container"), "{}", real.stderr);
    let stored = cp.get(&["-n", &ns, "pod", "app"]);
    // The service-account admission plugin names its token volume at random per request, so compare
    // what this webhook adds.
    let ours = |pod: &Value| {
        let app = container(pod, "containers", "app");
        (
            env_of(app),
            our_mounts(app).into_iter().cloned().collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        ours(&dry_pod),
        ours(&stored),
        "dry run and real create differ"
    );
    assert_eq!(reserved_volume(&dry_pod), reserved_volume(&stored));
}

/// A service account created, then re-annotated, after the webhook started is used for the next pod
/// within seconds, from the watch (no live GET).
#[tokio::test]
async fn service_accounts_created_or_reannotated_after_start_come_through_the_watch() {
    let cp = ControlPlane::from_env();
    let (webhook, ns, _registered) = cp.scenario("watch", &[], &[]).await;
    let api_lookups = || webhook.metric("azwi_service_account_lookups_total", &["source=\"api\""]);
    let cached = || webhook.metric("azwi_service_account_cache_objects", &[]);
    let api_before = api_lookups().await;
    let cached_before = cached().await;

    cp.service_account(
        &ns,
        "late",
        &[("azure.workload.identity/client-id", CLIENT_ID)],
    );
    // The watch delivers it: the cache's object count (a gauge refreshed every 10 s) goes up
    // without any pod asking for it.
    assert!(
        eventually(Duration::from_secs(20), || async {
            cached().await > cached_before
        })
        .await,
        "the watch never delivered the new service account"
    );
    let create = |name: &str| cp.create_pod(&plain_pod(&ns, name, "late"));
    let first = create("first");
    assert_eq!(app_env(&first)[0].1, CLIENT_ID, "{first:#}");

    cp.annotate_service_account(
        &ns,
        "late",
        &[("azure.workload.identity/client-id", OTHER_CLIENT_ID)],
    );
    let mut n = 0;
    let updated = eventually(Duration::from_secs(10), || {
        std::future::ready({
            n += 1;
            let pod = create(&format!("second-{n}"));
            app_env(&pod)[0].1 == OTHER_CLIENT_ID
        })
    })
    .await;
    assert!(
        updated,
        "the new client ID never reached the webhook:\n{}",
        webhook.running.log()
    );
    assert_eq!(
        api_lookups().await,
        api_before,
        "a pod needed a live GET: the watch did not deliver"
    );
    assert!(
        webhook
            .metric(
                "azwi_service_account_lookups_total",
                &["source=\"cache\"", "result=\"hit\""]
            )
            .await
            >= 2
    );
}

/// The proxy sidecar as a native sidecar: the webhook learns from the real `/version` that the
/// server supports them, and kube-apiserver's validation accepts the result.
#[tokio::test]
async fn proxy_sidecar_is_native_on_a_current_server() {
    let cp = ControlPlane::from_env();
    let env = [
        (
            "PROXY_IMAGE",
            "mcr.microsoft.com/oss/azure/workload-identity/proxy:v1.6.0",
        ),
        (
            "PROXY_INIT_IMAGE",
            "mcr.microsoft.com/oss/azure/workload-identity/proxy-init:v1.6.0",
        ),
    ];
    let (_webhook, ns, _registered) = cp.scenario("proxy", &[], &env).await;
    workload_account(&cp, &ns);
    let manifest = pod(
        &ns,
        "app",
        "workload",
        json!({"azure.workload.identity/inject-proxy-sidecar": "true"}),
        json!({"initContainers": [busybox("setup")], "containers": [busybox("app")]}),
    );
    let pod = cp.create_pod(&manifest);
    let names = |list: &str| -> Vec<String> {
        pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        names("initContainers"),
        ["azwi-proxy", "setup", "azwi-proxy-init"],
        "{pod:#}"
    );
    assert_eq!(names("containers"), ["app"], "{pod:#}");
    let proxy = container(&pod, "initContainers", "azwi-proxy");
    assert_eq!(
        proxy["restartPolicy"], "Always",
        "native sidecar: {proxy:#}"
    );
    assert_untouched(proxy);
    assert_untouched(container(&pod, "initContainers", "azwi-proxy-init"));
    assert_eq!(app_env(&pod), injected(false), "{pod:#}");
}

/// Adds a container named `added-later` to every pod that lacks one: a second webhook that runs
/// after ours, so kube-apiserver reinvokes ours.
struct AddContainer;

impl azwi_webhook::review::ReviewHandler for AddContainer {
    fn refuse(
        &self,
        refusal: azwi_webhook::review::Refusal,
        message: &str,
    ) -> azwi_webhook::review::ReviewReply {
        azwi_webhook::admission::refusal_reply(refusal, message)
    }

    fn review(
        &self,
        body: bytes::Bytes,
        _budget: Option<Duration>,
    ) -> futures::future::BoxFuture<'_, azwi_webhook::review::ReviewReply> {
        use base64::Engine as _;
        Box::pin(async move {
            let review: Value = serde_json::from_slice(&body).unwrap_or_default();
            let request = &review["request"];
            let has = request["object"]["spec"]["containers"]
                .as_array()
                .is_some_and(|cs| cs.iter().any(|c| c["name"] == "added-later"));
            let mut response = json!({"uid": request["uid"], "allowed": true});
            if !has {
                let patch = json!([{"op": "add", "path": "/spec/containers/-",
                                    "value": {"name": "added-later", "image": "busybox"}}]);
                response["patchType"] = json!("JSONPatch");
                response["patch"] =
                    json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
            }
            let reply = json!({"apiVersion": review["apiVersion"], "kind": "AdmissionReview",
                               "response": response});
            azwi_webhook::review::ReviewReply {
                status: 200,
                body: reply.to_string().into_bytes(),
            }
        })
    }
}

// Multi-threaded: the adder webhook runs in this process and must answer while a worker blocks on
// kubectl.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_added_by_a_later_webhook_is_injected_on_reinvocation_without_duplicates() {
    use azwi_webhook::server::{router, Readiness, ServeOptions};
    let cp = ControlPlane::from_env();
    let webhook = E2eWebhook::start(&cp, Certs::Provided, &[], &[]).await;
    let ns = cp.namespace("reinvoke");
    // Webhooks run in the order of their configurations' names: ours first, then the adder.
    let ours = unique("a-reinvoke");
    let _registered = cp.register(&ours, &webhook, &[&ns]).await;

    let adder_pki = tls_support::generate_ca_and_leaf(&[controlplane::WEBHOOK_HOST]);
    let adder = tls_support::TestServer::start(
        router(std::sync::Arc::new(AddContainer)),
        tls_support::static_tls(&adder_pki, azwi_webhook::tls::TlsMinVersion::V1_2, None),
        Readiness::new(),
        ServeOptions::default(),
    );
    let adder_url = format!(
        "https://{}:{}/mutate-v1-pod",
        controlplane::WEBHOOK_HOST,
        adder.addr.port()
    );
    let _adder_registered = cp.register_url(
        &unique("z-reinvoke-adder"),
        &adder_url,
        Some(&adder_pki.ca.pem),
        &[&ns],
    );

    workload_account(&cp, &ns);
    let manifest = plain_pod(&ns, "app", "workload");
    // The adder's configuration takes effect a moment after it is written.
    let mut last = String::new();
    let added = eventually(Duration::from_secs(30), || {
        std::future::ready({
            let dry = cp.kubectl(
                &["create", "--dry-run=server", "-o", "json", "-f", "-"],
                Some(&manifest),
            );
            last = dry.stderr;
            dry.success && dry.stdout.contains("added-later")
        })
    })
    .await;
    assert!(added, "the adder webhook never took effect: {last}");
    let pod = cp.create_pod(&manifest);

    let volume = reserved_volume(&pod);
    for name in ["app", "added-later"] {
        let c = container(&pod, "containers", name);
        assert_eq!(azure_env(c), injected(false), "{name}, once each: {pod:#}");
        assert_mounted(c, volume);
    }
    assert_eq!(
        pod["spec"]["containers"].as_array().map(Vec::len),
        Some(2),
        "{pod:#}"
    );
}

/// Self-managed certificates with the shipped names and RBAC: the first replica creates the Secret
/// and publishes its CA into an empty caBundle, kube-apiserver trusts it; a second replica reuses
/// the Secret unchanged and serves the same identity.
#[tokio::test]
async fn self_managed_certificates_are_created_published_trusted_and_reused_by_a_second_replica() {
    use controlplane::{SHIPPED_SECRET, SHIPPED_WEBHOOK_CONFIG, WEBHOOK_NAMESPACE};
    let cp = ControlPlane::from_env();
    let ns = cp.namespace("selfmanaged");
    workload_account(&cp, &ns);
    // Registered as the manifests install it: empty caBundle, the webhook not yet running.
    let unreachable = format!("https://{}:1/mutate-v1-pod", controlplane::WEBHOOK_HOST);
    let registration = cp.register_url(SHIPPED_WEBHOOK_CONFIG, &unreachable, None, &[&ns]);

    let first = E2eWebhook::start(&cp, Certs::SelfManaged, &[], &[]).await;
    let secret = cp.get(&["-n", WEBHOOK_NAMESPACE, "secret", SHIPPED_SECRET]);
    let ca = secret["data"]["ca.crt"]
        .as_str()
        .expect("ca.crt in the Secret")
        .to_owned();
    for key in ["tls.crt", "tls.key"] {
        assert!(secret["data"][key].is_string(), "{key}: {secret:#}");
    }
    let mwc = cp.get(&["mutatingwebhookconfiguration", SHIPPED_WEBHOOK_CONFIG]);
    assert_eq!(
        mwc["webhooks"][0]["clientConfig"]["caBundle"],
        json!(ca),
        "CA published"
    );

    registration.set_url(&cp, &first.url());
    registration.wait_active(&cp, &first).await;
    let create = |name: &str| {
        let manifest = plain_pod(&ns, name, "workload");
        let pod = cp.create_pod(&manifest);
        assert_eq!(app_env(&pod), injected(false), "{pod:#}");
    };
    create("through-first");

    let second = E2eWebhook::start(&cp, Certs::SelfManaged, &[], &[]).await;
    drop(first);
    registration.set_url(&cp, &second.url());
    registration.wait_active(&cp, &second).await;
    create("through-second");
    let again = cp.get(&["-n", WEBHOOK_NAMESPACE, "secret", SHIPPED_SECRET]);
    assert_eq!(
        again["metadata"]["resourceVersion"], secret["metadata"]["resourceVersion"],
        "the second replica rewrote the Secret"
    );
}

/// kube-apiserver presents its admission client certificate (AdmissionConfiguration kubeconfig);
/// a webhook requiring that CA admits, one requiring another CA refuses the connection and
/// failurePolicy Fail turns that into kube-apiserver's own error.
#[tokio::test]
async fn mutual_tls_with_the_api_server() {
    let cp = ControlPlane::from_env();
    let trusted = format!("--client-ca-file={}", cp.admission_client_ca.display());
    let (_webhook, ns, _registered) = cp.scenario("mtls", &[&trusted], &[]).await;
    workload_account(&cp, &ns);
    let manifest = plain_pod(&ns, "app", "workload");
    let stored = cp.create_pod(&manifest);
    assert_eq!(app_env(&stored), injected(false), "{stored:#}");

    let other_ca = tls_support::generate_ca_and_leaf(&["unrelated"]);
    let untrusted = format!("--client-ca-file={}", other_ca.ca_path().display());
    let strict = E2eWebhook::start(&cp, Certs::Provided, &[&untrusted], &[]).await;
    let ns = cp.namespace("mtls-refused");
    let registration = cp.register_url(
        &unique("mtls-refused"),
        &strict.url(),
        Some(strict.ca_pem()),
        &[&ns],
    );
    workload_account(&cp, &ns);
    let refused = eventually(Duration::from_secs(30), || {
        std::future::ready({
            let out = registration.probe(&cp);
            !out.success && out.stderr.contains("failed calling webhook")
        })
    })
    .await;
    assert!(
        refused,
        "the probe never failed through the refusing webhook"
    );
    let manifest = plain_pod(&ns, "app", "workload");
    let out = cp.kubectl(&["apply", "-f", "-"], Some(&manifest));
    assert!(
        !out.success,
        "admitted through a webhook that refuses the API server"
    );
    assert!(
        out.stderr
            .contains("failed calling webhook \"mutation.azure-workload-identity.io\""),
        "{}",
        out.stderr
    );
    assert!(!cp.exists(&["-n", &ns, "pod", "app"]));
    assert_eq!(
        strict.reviews().await,
        0,
        "no review got through the handshake"
    );
}

/// The Helm chart's rendered configuration, run for real: the webhook process gets the Deployment's
/// arguments and environment (the ConfigMap it loads included), and kube-apiserver calls it through
/// the chart's MutatingWebhookConfiguration (the Service reference replaced by the loopback URL,
/// the only change).
#[tokio::test]
async fn the_chart_rendered_configuration_admits_a_pod() {
    use controlplane::{SHIPPED_WEBHOOK_CONFIG, WEBHOOK_NAMESPACE};
    let cp = ControlPlane::from_env();
    let helm = std::env::var("AZWI_E2E_HELM").expect("AZWI_E2E_HELM (set by e2e/with-cluster.sh)");
    let pki = tls_support::generate_ca_and_leaf(&[controlplane::WEBHOOK_HOST]);
    let ns = cp.namespace("chart");
    let probe = cp.namespace("chart-probe");
    for n in [&ns, &probe] {
        cp.ok(
            &["label", "namespace", n, "e2e.azwi.test/chart=selected"],
            None,
        );
    }
    let ca_bundle = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(&pki.ca.pem)
    };
    let values = json!({
        "azureTenantID": TENANT,
        "logLevel": "info",
        "mutatingWebhookNamespaceSelector": {"matchLabels": {"e2e.azwi.test/chart": "selected"}},
        "certificates": {"mode": "secret", "secret": {"caBundle": ca_bundle}},
        "customTokenEndpoint": {"azureKubernetesTokenProxy": TOKEN_PROXY,
                                "azureKubernetesSniName": SNI_NAME},
    });
    let dir = tempfile::TempDir::new().expect("tempdir");
    let values_file = dir.path().join("values.yaml");
    std::fs::write(&values_file, values.to_string()).expect("values");
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/azwi-webhook");
    let out = std::process::Command::new(&helm)
        .args(["template", "wi", chart, "-n", WEBHOOK_NAMESPACE, "-f"])
        .arg(&values_file)
        .output()
        .expect("helm");
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let objects: Vec<Value> =
        serde_saphyr::from_slice_multiple(&out.stdout).expect("rendered YAML");
    let find = |kind: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} rendered"))
    };

    // The container as the kubelet would start it: its args, its env (POD_NAMESPACE from the
    // downward API), and the ConfigMap it loads with envFrom.
    let manager = &find("Deployment")["spec"]["template"]["spec"]["containers"][0];
    let config_map = find("ConfigMap");
    assert_eq!(
        manager["envFrom"][0]["configMapRef"]["name"], config_map["metadata"]["name"],
        "{manager:#}"
    );
    let mut env: Vec<(String, String)> = config_map["data"]
        .as_object()
        .expect("ConfigMap data")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().expect("string").to_owned()))
        .collect();
    for e in manager["env"].as_array().into_iter().flatten() {
        let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            Some("metadata.namespace") => WEBHOOK_NAMESPACE.to_owned(),
            Some(other) => panic!("unexpected downward API field {other}"),
            None => e["value"].as_str().expect("env value").to_owned(),
        };
        env.push((e["name"].as_str().expect("name").to_owned(), value));
    }
    // Listener addresses are chosen by the test (free loopback ports) and the certificate directory
    // is the test's; every other argument is the chart's.
    let mut args: Vec<String> = manager["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("arg").to_owned())
        .filter(|a| {
            ![
                "--webhook-addr",
                "--health-addr",
                "--metrics-addr",
                "--webhook-cert-dir",
            ]
            .iter()
            .any(|flag| a.starts_with(flag))
        })
        .collect();
    assert_eq!(args.first().map(String::as_str), Some("serve"), "{args:?}");
    args.remove(0);
    assert!(
        args.iter().any(|a| a == "--disable-cert-rotation"),
        "{args:?}"
    );
    args.push(format!("--webhook-cert-dir={}", pki.path().display()));
    let webhook = E2eWebhook::launch(&cp, dir, Some(pki), &args, &env).await;

    let mut configuration = find("MutatingWebhookConfiguration").clone();
    assert_eq!(configuration["metadata"]["name"], SHIPPED_WEBHOOK_CONFIG);
    let client = &mut configuration["webhooks"][0]["clientConfig"];
    let path = client["service"]["path"]
        .as_str()
        .expect("service path")
        .to_owned();
    client
        .as_object_mut()
        .expect("clientConfig")
        .remove("service");
    client["url"] = json!(format!(
        "https://{}:{}{path}",
        controlplane::WEBHOOK_HOST,
        webhook.running.webhook.port()
    ));
    let _registered = cp.register_rendered(&configuration, &webhook, &probe).await;

    let stored = bound_identity_binding_pod(&cp, &ns);
    let app = container(&stored, "containers", "app");
    assert_eq!(azure_env(app), injected(true), "{stored:#}");
    assert_token_source(reserved_volume(&stored), "api://AKSIdentityBinding");
}
