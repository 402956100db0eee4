//! `inject` and the webhook run the same core: the same pods through the admission handler and
//! through `inject` give identical patches and identical RBAC conclusions. The webhook asks an
//! authorizer that grants exactly what the input's ClusterRoleBindings grant; `inject` reads those
//! objects offline.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/app.rs"]
mod test_app;
#[path = "support/tls.rs"]
mod tls_support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use azwi_webhook::admission::rbac::RbacStep;
use azwi_webhook::admission::Admitter;
use azwi_webhook::config::{self, parse_go_style, Command, InjectArgs};
use azwi_webhook::k8s::authz::{
    AccessDecision, Authorizer, AuthzError, CacheConfig, CachedAuthorizer,
};
use azwi_webhook::k8s::service_accounts::InMemoryServiceAccounts;
use azwi_webhook::metrics::Metrics;
use azwi_webhook::mutate::service_account::ServiceAccountMeta;
use azwi_webhook::mutate::settings::RbacCheck;
use base64::Engine;
use futures::future::BoxFuture;
use serde_json::{json, Value};

const NS: &str = "ns";
const GRANTED: &str = "11111111-0000-0000-0000-000000000001";
const NOT_GRANTED: &str = "22222222-0000-0000-0000-000000000002";

fn env() -> BTreeMap<&'static str, &'static str> {
    [
        ("AZURE_TENANT_ID", "33333333-0000-0000-0000-000000000003"),
        ("AZURE_KUBERNETES_TOKEN_PROXY", "https://proxy.example.com"),
        ("AZURE_KUBERNETES_SNI_NAME", "proxy.example.com"),
        ("AZURE_KUBERNETES_CA_CONFIGMAP_NAME", "kube-root-ca.crt"),
        ("PROXY_IMAGE", "example.test/proxy:v1"),
        ("PROXY_INIT_IMAGE", "example.test/proxy-init:v1"),
    ]
    .into()
}

fn inject_args(extra: &[&str]) -> InjectArgs {
    let argv = ["azwi-webhook", "inject", "-f", "-"].iter().chain(extra);
    match parse_go_style(argv).expect("command line").into_command() {
        Command::Inject(args) => args,
        other => panic!("not inject: {other:?}"),
    }
}

fn account(name: &str, client_id: Option<&str>) -> ServiceAccountMeta {
    ServiceAccountMeta {
        namespace: NS.into(),
        name: name.into(),
        annotations: client_id
            .map(|id| {
                (
                    "azure.workload.identity/client-id".to_owned(),
                    id.to_owned(),
                )
            })
            .into_iter()
            .collect(),
    }
}

fn accounts() -> Vec<ServiceAccountMeta> {
    vec![
        account("granted", Some(GRANTED)),
        account("not-granted", Some(NOT_GRANTED)),
        account("no-client-id", None),
    ]
}

/// The one ClusterRoleBinding of the input: `ns/granted` may use `GRANTED`.
const GRANTS: [(&str, &str); 1] = [("granted", GRANTED)];

fn rbac_documents() -> Vec<Value> {
    let (sa, id) = GRANTS[0];
    vec![
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": "use-id"},
               "rules": [{"apiGroups": ["cid.wi.aks.azure.com"], "resources": [id],
                          "verbs": ["use-managed-identity"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": "sa-uses-id"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "use-id"},
               "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": NS}]}),
    ]
}

/// Grants what `GRANTS` grants, as the API server's RBAC authorizer would.
struct Granted(BTreeSet<(String, String)>);

impl Authorizer for Granted {
    fn check<'a>(
        &'a self,
        namespace: &'a str,
        service_account: &'a str,
        client_id: &'a str,
        _: tokio::time::Instant,
    ) -> BoxFuture<'a, Result<AccessDecision, AuthzError>> {
        let allowed = namespace == NS
            && self
                .0
                .contains(&(service_account.to_owned(), client_id.to_owned()));
        Box::pin(async move {
            Ok(AccessDecision {
                allowed,
                reason: String::new(),
            })
        })
    }
}

fn pod(name: &str, service_account: &str, annotations: Value, containers: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS,
                     "labels": {"azure.workload.identity/use": "true"},
                     "annotations": annotations},
        "spec": {"serviceAccountName": service_account, "containers": containers}
    })
}

fn identity_binding() -> Value {
    json!({"azure.workload.identity/use-identity-binding": "true"})
}

fn pods() -> Vec<Value> {
    let app = json!([{"name": "app", "image": "app:1"}]);
    let mut deprecated_field = pod("deprecated-field", "", json!({}), app.clone());
    deprecated_field["spec"] = json!({"serviceAccount": "granted", "containers": app.clone()});
    vec![
        pod("plain", "granted", json!({}), app.clone()),
        pod("ib-granted", "granted", identity_binding(), app.clone()),
        pod(
            "ib-not-granted",
            "not-granted",
            identity_binding(),
            app.clone(),
        ),
        pod(
            "ib-no-client-id",
            "no-client-id",
            identity_binding(),
            app.clone(),
        ),
        pod(
            "ib-second-identity",
            "granted",
            identity_binding(),
            json!([{"name": "app"},
                   {"name": "other", "env": [{"name": "AZURE_CLIENT_ID", "value": NOT_GRANTED}]}]),
        ),
        pod(
            "ib-value-from",
            "granted",
            identity_binding(),
            json!([{"name": "app"},
                   {"name": "secret", "env": [{"name": "AZURE_CLIENT_ID",
                     "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]),
        ),
        pod(
            "skip-and-proxy",
            "granted",
            json!({"azure.workload.identity/skip-containers": "sidecar",
                   "azure.workload.identity/inject-proxy-sidecar": "true"}),
            json!([{"name": "app"}, {"name": "sidecar"}]),
        ),
        pod(
            "bad-expiration",
            "granted",
            json!({"azure.workload.identity/service-account-token-expiration": "60"}),
            app.clone(),
        ),
        deprecated_field,
    ]
}

/// What the webhook answered: the patch (`None` when refused) and the refusal's message or the
/// warnings.
#[derive(Debug)]
struct WebhookAnswer {
    patch: Option<Value>,
    denial: Option<String>,
    warnings: Vec<String>,
}

async fn through_the_webhook(admitter: &Admitter, pod: &Value) -> WebhookAnswer {
    let body = test_app::pod_review("admission.k8s.io/v1", "uid", pod);
    let reply = admitter.admit(&body, Some(Duration::from_secs(10))).await;
    let answer: Value = serde_json::from_slice(&reply.body).expect("JSON answer");
    let response = &answer["response"];
    let warnings = response["warnings"]
        .as_array()
        .map(|w| {
            w.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if response["allowed"] == json!(false) {
        let message = response["status"]["message"].as_str().unwrap_or_default();
        return WebhookAnswer {
            patch: None,
            denial: Some(message.to_owned()),
            warnings,
        };
    }
    let patch = response["patch"].as_str().map(|encoded| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64");
        serde_json::from_slice(&bytes).expect("patch JSON")
    });
    WebhookAnswer {
        patch: Some(patch.unwrap_or_else(|| json!([]))),
        denial: None,
        warnings,
    }
}

/// `inject -o patch` on the input plus this pod: the pod's patch, or the error; and the warnings.
async fn through_inject(input: &str) -> (Result<Value, String>, Vec<String>) {
    let printed = azwi_webhook::inject::execute(
        &inject_args(&["-o", "patch"]),
        &env(),
        &mut input.as_bytes(),
    )
    .await;
    match printed {
        Err(e) => (Err(e.to_string()), Vec::new()),
        Ok(printed) => {
            let entries: Value = serde_json::from_str(&printed.stdout).expect("patch output");
            let patch = entries
                .as_array()
                .and_then(|all| all.iter().find(|e| e["kind"] == "Pod"))
                .map_or_else(|| json!([]), |entry| entry["patch"].clone());
            (Ok(patch), printed.warnings)
        }
    }
}

#[tokio::test]
async fn the_webhook_and_inject_agree_on_patches_and_rbac() {
    let args = inject_args(&[]);
    let settings = config::build_settings(&args.mutation, &env()).expect("settings");
    let granted = GRANTS
        .iter()
        .map(|(sa, id)| ((*sa).to_owned(), (*id).to_owned()))
        .collect();
    let authorizer = CachedAuthorizer::new(Arc::new(Granted(granted)), CacheConfig::default());
    let admitter = |rbac: Option<RbacStep>| {
        let admitter = Admitter::new(
            Arc::new(settings.clone()),
            Arc::new(accounts().into_iter().collect::<InMemoryServiceAccounts>()),
            Metrics::new().expect("metrics"),
        );
        match rbac {
            Some(rbac) => admitter.with_rbac(rbac),
            None => admitter,
        }
    };
    let checked = admitter(Some(RbacStep {
        authorizer: Arc::new(authorizer),
        mode: RbacCheck::Deny,
    }));
    // The patch of a pod RBAC refuses, for comparison with what inject writes.
    let unchecked = admitter(None);

    let mut documents: Vec<Value> = accounts()
        .iter()
        .map(|sa| {
            let annotations: BTreeMap<&str, &str> = sa.annotations.iter().collect();
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": sa.name, "namespace": sa.namespace, "annotations": annotations}})
        })
        .collect();
    documents.extend(rbac_documents());
    let mut outcomes = BTreeSet::new();
    for pod in pods() {
        let name = pod["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let input: Vec<String> = documents
            .iter()
            .chain([&pod])
            .map(|d| serde_json::to_string(d).expect("JSON"))
            .collect();
        let webhook = through_the_webhook(&checked, &pod).await;
        let unchecked = through_the_webhook(&unchecked, &pod).await;
        let (injected, inject_warnings) = through_inject(&input.join("\n")).await;
        let rejection = inject_warnings
            .iter()
            .find(|w| w.contains("would reject the pod: "))
            .map(|w| {
                w.split_once("would reject the pod: ")
                    .map_or("", |(_, m)| m)
                    .to_owned()
            });
        match (&webhook.denial, &injected) {
            // Refused for the pod itself: inject refuses it with the same message.
            (Some(message), Err(error)) => {
                assert!(
                    error.ends_with(message.as_str()),
                    "{name}: {error} vs {message}"
                );
                outcomes.insert("invalid");
            }
            // Refused by RBAC: inject injects, and warns with the webhook's own message.
            (Some(message), Ok(patch)) => {
                assert_eq!(rejection.as_deref(), Some(message.as_str()), "{name}");
                assert_eq!(
                    Some(patch),
                    unchecked.patch.as_ref(),
                    "{name}: patches differ"
                );
                outcomes.insert("rbac-denied");
            }
            (None, Ok(patch)) => {
                assert_eq!(
                    Some(patch),
                    webhook.patch.as_ref(),
                    "{name}: patches differ"
                );
                assert_eq!(rejection, None, "{name}: inject predicts a refusal");
                for warning in &webhook.warnings {
                    assert!(
                        inject_warnings.iter().any(|w| w.ends_with(warning.as_str())),
                        "{name}: inject lacks the webhook's warning {warning:?}: {inject_warnings:?}"
                    );
                }
                outcomes.insert("admitted");
            }
            (None, Err(error)) => panic!("{name}: the webhook admits, inject fails: {error}"),
        }
    }
    // The cases above reach every kind of conclusion.
    assert_eq!(
        outcomes,
        ["admitted", "invalid", "rbac-denied"].into_iter().collect()
    );
}
