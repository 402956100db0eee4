//! The short fuzz run for CI: proptest-generated AdmissionReviews (structured pods with every
//! annotation the mutation reads, wrong types and nulls mixed in) and byte-level corruptions of
//! them, through `Admitter::admit` with in-memory service accounts. Every response must keep the
//! contract (README, "HTTP contract") and every patch must apply to the object it was made for. The long
//! campaign is cargo-fuzz (fuzz/, docs/reliability.md).

use std::sync::Arc;
use std::time::Duration;

use azwi_webhook::admission::wire::{decode, decode_with_serde};
use azwi_webhook::admission::Admitter;
use azwi_webhook::k8s::service_accounts::{LookupError, ServiceAccounts};
use azwi_webhook::mutate::service_account::ServiceAccountMeta;
use azwi_webhook::mutate::settings::{ClusterCa, IdentityBinding, ProxySettings, Settings};
use base64::Engine;
use futures::future::BoxFuture;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// `missing` does not exist, `down` is an outage; any other name has a client ID.
struct Accounts;

impl ServiceAccounts for Accounts {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<ServiceAccountMeta>, LookupError>> {
        Box::pin(async move {
            let (namespace, name) = (namespace.to_owned(), name.to_owned());
            match name.as_str() {
                "missing" => Err(LookupError::NotFound { namespace, name }),
                "down" => Err(LookupError::Unavailable {
                    namespace,
                    name,
                    reason: "generated outage".into(),
                }),
                _ => Ok(Arc::new(ServiceAccountMeta {
                    namespace,
                    name,
                    annotations: [(
                        "azure.workload.identity/client-id".to_string(),
                        "client".to_string(),
                    )]
                    .into(),
                })),
            }
        })
    }
}

fn admitter(native: bool) -> Admitter {
    let settings = Settings {
        audience: "api://AzureADTokenExchange".into(),
        tenant_id: "tenant".into(),
        authority_host: "https://login.microsoftonline.com/".into(),
        identity_binding: Some(IdentityBinding {
            switch_key: "azure.workload.identity/use-identity-binding".into(),
            audience: "api://AKSIdentityBinding".into(),
            token_proxy: "https://proxy.example:443".into(),
            sni_name: "sni.example".into(),
            ca: ClusterCa::Data("-----BEGIN CERTIFICATE-----\n".into()),
        }),
        proxy: ProxySettings {
            image: "proxy:1".into(),
            init_image: "proxy-init:1".into(),
            log_level: "info".into(),
            ..ProxySettings::default()
        },
    };
    Admitter::new(
        Arc::new(settings),
        Arc::new(Accounts),
        azwi_webhook::metrics::Metrics::new().expect("metrics"),
    )
    .with_discovery(azwi_webhook::k8s::discovery::Discovery::fixed(native))
}

/// Short strings that matter to the mutation, plus a few hostile ones.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("true".to_string()),
        Just("false".to_string()),
        Just("8000".to_string()),
        Just("3600".to_string()),
        Just("86400".to_string()),
        Just("app;sidecar".to_string()),
        Just("~1/~0".to_string()),
        Just(String::new()),
        "[a-z0-9;/~.-]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(8).collect()),
    ]
}

/// Any JSON scalar, or a wrong-typed container, in place of a well-formed field.
fn junk() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        word().prop_map(Value::from),
        Just(json!([])),
        Just(json!({})),
    ]
}

/// A field that is usually well-formed and sometimes junk.
fn or_junk(good: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    prop_oneof![4 => good, 1 => junk()]
}

fn string_map() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("azure.workload.identity/use".to_string()),
        Just("azure.workload.identity/use-identity-binding".to_string()),
        Just("azure.workload.identity/skip-containers".to_string()),
        Just("azure.workload.identity/inject-proxy-sidecar".to_string()),
        Just("azure.workload.identity/proxy-sidecar-port".to_string()),
        Just("azure.workload.identity/service-account-token-expiration".to_string()),
        Just("azure.workload.identity/client-id".to_string()),
        "[a-z/.]{1,10}",
    ];
    proptest::collection::btree_map(key, or_junk(word().prop_map(Value::from)), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

fn container() -> impl Strategy<Value = Value> {
    let env_name = prop_oneof![
        Just("AZURE_CLIENT_ID".to_string()),
        Just("AZURE_FEDERATED_TOKEN_FILE".to_string()),
        "[A-Z_]{1,8}",
    ];
    let env = proptest::collection::vec(
        (env_name, word()).prop_map(|(n, v)| json!({"name": n, "value": v})),
        0..3,
    );
    let name = prop_oneof![
        Just("app".to_string()),
        Just("sidecar".to_string()),
        "[a-z]{1,6}"
    ];
    (
        or_junk(name.prop_map(Value::from)),
        or_junk(env.prop_map(Value::from)),
    )
        .prop_map(|(name, env)| json!({"name": name, "image": "img", "env": env}))
}

fn containers(max: usize) -> impl Strategy<Value = Value> {
    or_junk(proptest::collection::vec(container(), 0..max).prop_map(Value::from))
}

fn pod() -> impl Strategy<Value = Value> {
    let sa = prop_oneof![
        Just("workload".to_string()),
        Just("missing".to_string()),
        Just("down".to_string()),
        word(),
    ];
    let name = prop_oneof![Just("web-0".to_string()), word()];
    (
        (or_junk(name.prop_map(Value::from)), string_map(), string_map()),
        (or_junk(sa.prop_map(Value::from)), containers(4), containers(3)),
        any::<bool>(),
    )
        .prop_map(|((name, labels, annotations), (sa, main, init), with_spec)| {
            let mut pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "ns", "labels": labels, "annotations": annotations},
            });
            if with_spec {
                pod["spec"] = json!({"serviceAccountName": sa, "containers": main, "initContainers": init});
            }
            pod
        })
}

fn review() -> impl Strategy<Value = Value> {
    let version = prop_oneof![
        4 => Just(json!("admission.k8s.io/v1")),
        2 => Just(json!("admission.k8s.io/v1beta1")),
        1 => junk(),
    ];
    let operation =
        prop_oneof![6 => Just(json!("CREATE")), 1 => Just(json!("UPDATE")), 1 => junk()];
    (
        version,
        operation,
        or_junk(pod()),
        or_junk(Just(json!("uid-1"))),
    )
        .prop_map(|(version, operation, object, uid)| {
            json!({"apiVersion": version, "kind": "AdmissionReview", "request": {
                "uid": uid, "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "namespace": "ns", "operation": operation, "object": object}})
        })
}

/// A generated review as bytes, sometimes corrupted: truncated, a byte replaced, or bytes inserted.
fn body() -> impl Strategy<Value = Vec<u8>> {
    (review(), 0u8..8, any::<usize>(), any::<u8>()).prop_map(|(review, how, at, byte)| {
        let mut bytes = serde_json::to_vec(&review).expect("json");
        let at = at % bytes.len();
        match how {
            0 => bytes.truncate(at),
            1 => bytes[at] = byte,
            2 => bytes.splice(at..at, [byte, b'"', b'{']).for_each(drop),
            _ => {}
        }
        bytes
    })
}

/// The contract, as the cargo-fuzz target checks it.
fn check(body: &[u8], status: u16, reply: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!(status == 200 || status == 400, "status {}", status);
    let reply: Value =
        serde_json::from_slice(reply).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&reply["kind"], "AdmissionReview");
    let response = &reply["response"];
    if status == 400 {
        prop_assert_eq!(&response["allowed"], false);
        prop_assert_eq!(&response["status"]["code"], 400);
        return Ok(());
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    prop_assert_eq!(&response["uid"], &request["request"]["uid"]);
    let Some(patch) = response.get("patch") else {
        return Ok(());
    };
    prop_assert_eq!(&response["allowed"], true);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch.as_str().unwrap_or_default())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let ops: json_patch::Patch =
        serde_json::from_slice(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut object = request["request"]["object"].clone();
    json_patch::patch(&mut object, &ops).map_err(|e| {
        TestCaseError::fail(format!(
            "patch does not apply: {e}: {}",
            String::from_utf8_lossy(&bytes)
        ))
    })?;
    Ok(())
}

/// One case: admitted on a thread with a tokio worker's default 2 MiB stack, as in production.
fn admit_case(body: Vec<u8>, native: bool) -> Result<(), TestCaseError> {
    let input = body.clone();
    let reply = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime");
            runtime.block_on(admitter(native).admit(&input, Some(Duration::from_secs(10))))
        })
        .expect("thread")
        .join()
        .map_err(|_| TestCaseError::fail("admission panicked"))?;
    check(&body, reply.status, &reply.body)
}

#[test]
fn generated_reviews_keep_the_response_contract() {
    // ~5 s in a debug build on 2 cores; PROPTEST_CASES raises it for a longer local run.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    run_cases(cases, (body(), any::<bool>()), |(body, native)| {
        admit_case(body, native)
    });
}

/// Runs `test` on `cases` generated values. The strategy tree is deep: generating from it in a
/// debug build needs more than the 2 MiB of a test thread, so the runner gets 64 MiB (the
/// admission itself runs on 2 MiB, above).
fn run_cases<S>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError> + Send + 'static,
) where
    S: Strategy + Send + 'static,
{
    let config = ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || {
            let mut runner = proptest::test_runner::TestRunner::new(config);
            if let Err(e) = runner.run(&strategy, test) {
                panic!("{e}");
            }
        })
        .expect("runner thread")
        .join()
        .expect("no failing case");
}

/// The decoder's scanned pass reads every generated body (junk types and nulls in the fields it
/// keeps, corruptions) exactly as serde alone reads it: it may decline a body, never differ.
#[test]
fn generated_reviews_decode_as_serde_reads_them() {
    run_cases(3000, body(), |body| {
        prop_assert_eq!(
            format!("{:?}", decode(&body)),
            format!("{:?}", decode_with_serde(&body))
        );
        Ok(())
    });
}
