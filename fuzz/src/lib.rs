//! Shared harness for the fuzz targets: an `Admitter` over in-memory service accounts with every
//! optional feature switched on (identity binding, proxy sidecar), so that fuzz inputs can reach
//! all mutation branches, and the invariants every response must satisfy.

use std::sync::Arc;
use std::time::Duration;

use azwi_webhook::admission::Admitter;
use azwi_webhook::k8s::discovery::Discovery;
use azwi_webhook::k8s::service_accounts::{LookupError, ServiceAccounts};
use azwi_webhook::mutate::service_account::ServiceAccountMeta;
use futures::future::BoxFuture;
use azwi_webhook::mutate::settings::{ClusterCa, IdentityBinding, ProxySettings, Settings};
use base64::Engine;
use serde_json::Value;

/// Any namespace; the name picks the annotations, so fuzz inputs choose the service account's
/// shape through `spec.serviceAccountName` alone. `missing` is absent, `down` is an outage.
struct AnyServiceAccount;

impl ServiceAccounts for AnyServiceAccount {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<ServiceAccountMeta>, LookupError>> {
        Box::pin(async move {
            let annotations: &[(&str, &str)] = match name {
                "missing" => {
                    return Err(LookupError::NotFound {
                        namespace: namespace.into(),
                        name: name.into(),
                    })
                }
                "down" => {
                    return Err(LookupError::Unavailable {
                        namespace: namespace.into(),
                        name: name.into(),
                        reason: "fuzz outage".into(),
                    })
                }
                "bare" => &[],
                "expiring" => &[
                    ("azure.workload.identity/client-id", "c"),
                    (
                        "azure.workload.identity/service-account-token-expiration",
                        "3600",
                    ),
                ],
                "tenant" => &[
                    ("azure.workload.identity/client-id", "c"),
                    ("azure.workload.identity/tenant-id", "t2"),
                ],
                _ => &[("azure.workload.identity/client-id", "client")],
            };
            Ok(Arc::new(ServiceAccountMeta {
                namespace: namespace.into(),
                name: name.into(),
                annotations: annotations.iter().copied().collect(),
            }))
        })
    }
}

/// Settings with identity binding and the proxy configured, so every branch is reachable.
pub fn settings() -> Settings {
    Settings {
        audience: "api://AzureADTokenExchange".into(),
        tenant_id: "tenant".into(),
        authority_host: "https://login.microsoftonline.com/".into(),
        identity_binding: Some(IdentityBinding {
            switch_key: "azure.workload.identity/use-identity-binding".into(),
            audience: "api://AKSIdentityBinding".into(),
            token_proxy: "https://proxy.example:443".into(),
            sni_name: "sni.example".into(),
            ca: ClusterCa::ConfigMap("kube-root-ca.crt".into()),
        }),
        proxy: ProxySettings {
            image: "proxy:1".into(),
            init_image: "proxy-init:1".into(),
            log_level: "info".into(),
            ..ProxySettings::default()
        },
    }
}

/// One admitter and one single-threaded runtime, reused across executions.
pub struct Harness {
    runtime: tokio::runtime::Runtime,
    admitters: [Admitter; 2],
}

impl Harness {
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let admitter = |native| {
            Admitter::new(
                Arc::new(settings()),
                Arc::new(AnyServiceAccount),
                azwi_webhook::metrics::Metrics::new().expect("metrics"),
            )
            .with_discovery(Discovery::fixed(native))
        };
        Harness {
            runtime,
            admitters: [admitter(false), admitter(true)],
        }
    }

    /// Admits `body` and checks the response contract; panics (a fuzz finding) when it is broken.
    pub fn admit_and_check(&self, body: &[u8], native: bool) {
        let admitter = &self.admitters[usize::from(native)];
        let reply = self
            .runtime
            .block_on(admitter.admit(body, Some(Duration::from_secs(10))));
        check_reply(body, reply.status, &reply.body);
    }
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

/// The error contract (README, "HTTP contract"): 200 for a decodable review, 400 otherwise; the body is
/// always an AdmissionReview; a 200 echoes the uid; a patch is base64 JSON that applies to the
/// object it was computed for.
pub fn check_reply(body: &[u8], status: u16, reply: &[u8]) {
    assert!(status == 200 || status == 400, "unexpected status {status}");
    let reply: Value = serde_json::from_slice(reply).expect("response is JSON");
    assert_eq!(reply["kind"], "AdmissionReview");
    let response = &reply["response"];
    assert!(response["allowed"].is_boolean(), "allowed missing: {reply}");
    if status == 400 {
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 400);
        return;
    }
    // The decoder skips fields it does not read without validating them (a non-UTF-8 byte or a
    // broken `\u` escape in, say, userInfo is tolerated: see docs/reliability.md). Such a body has
    // no `Value` to compare with; the envelope checks above still hold for it.
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    assert_eq!(response["uid"], request["request"]["uid"], "uid not echoed");
    assert_eq!(
        reply["apiVersion"],
        request["apiVersion"]
            .as_str()
            .unwrap_or("admission.k8s.io/v1")
    );
    if response["allowed"] == false {
        let code = response["status"]["code"].as_u64().expect("denial code");
        assert!(matches!(code, 400 | 403 | 500), "denial code {code}");
        assert!(response.get("patch").is_none());
        return;
    }
    let Some(patch) = response.get("patch") else {
        assert!(
            response.get("patchType").is_none(),
            "patchType without patch"
        );
        return;
    };
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch.as_str().expect("patch is a string"))
        .expect("patch is base64");
    let ops: json_patch::Patch = serde_json::from_slice(&bytes).expect("patch is a JSON Patch");
    let mut object = request["request"]["object"].clone();
    if let Err(e) = json_patch::patch(&mut object, &ops) {
        panic!(
            "patch does not apply: {e}\npatch: {}\nobject: {}",
            String::from_utf8_lossy(&bytes),
            request["request"]["object"]
        );
    }
}
