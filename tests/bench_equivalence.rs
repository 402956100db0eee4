//! The naive baseline the benches compare against must do the same work as the real path: on every
//! bench fixture, both patches applied to the request object give the same pod.

#[path = "../benches/baseline/mod.rs"]
mod baseline;
#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

use std::sync::Arc;

use azwi_webhook::admission::Admitter;
use azwi_webhook::k8s::service_accounts::{LookupError, ServiceAccounts};
use azwi_webhook::mutate::service_account::ServiceAccountMeta;
use futures::future::BoxFuture;
use base64::Engine;
use serde_json::Value;

struct OneServiceAccount(Arc<ServiceAccountMeta>);

impl ServiceAccounts for OneServiceAccount {
    fn get<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Arc<ServiceAccountMeta>, LookupError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

/// The response's patch applied to the review's object.
fn patched(review: &[u8], response: &[u8]) -> Value {
    let review: Value = serde_json::from_slice(review).expect("review json");
    let response: Value = serde_json::from_slice(response).expect("response json");
    assert_eq!(response["response"]["allowed"], true, "{response}");
    let encoded = response["response"]["patch"].as_str().expect("a patch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("base64");
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("patch");
    let mut pod = review["request"]["object"].clone();
    json_patch::patch(&mut pod, &patch).expect("patch applies");
    pod
}

/// `creationTimestamp: null` (what the API server sends) and no field mean the same; the typed
/// round trip of the baseline drops the null, so it is dropped on both sides before comparing.
fn normalise(mut pod: Value) -> Value {
    if let Some(metadata) = pod.get_mut("metadata").and_then(Value::as_object_mut) {
        if metadata.get("creationTimestamp") == Some(&Value::Null) {
            metadata.remove("creationTimestamp");
        }
    }
    pod
}

#[tokio::test]
async fn baseline_and_real_path_patch_every_fixture_the_same() {
    let settings = fixtures::settings();
    let sa = fixtures::service_account();
    let admitter = Admitter::new(
        Arc::new(settings.clone()),
        Arc::new(OneServiceAccount(Arc::new(sa.clone()))),
        azwi_webhook::metrics::Metrics::new().expect("metrics"),
    );
    for (size, review) in fixtures::all() {
        let real = admitter.admit(&review, None).await;
        assert_eq!(real.status, 200, "{size}");
        let naive = baseline::admit(&review, &settings, &sa).expect("baseline answers");
        let real_pod = normalise(patched(&review, &real.body));
        let naive_pod = normalise(patched(&review, &naive));
        assert_eq!(real_pod, naive_pod, "{size}: the patched pods differ");
        // The mutation really happened (equal but untouched pods would prove nothing).
        let original: Value = serde_json::from_slice(&review).expect("json");
        assert_ne!(
            normalise(original["request"]["object"].clone()),
            real_pod,
            "{size}"
        );
        let containers = real_pod["spec"]["containers"]
            .as_array()
            .expect("containers");
        assert!(containers.iter().all(|c| c["env"]
            .as_array()
            .is_some_and(|env| env.iter().any(|e| e["name"] == "AZURE_CLIENT_ID"))));
    }
}

#[test]
fn fixture_sizes_are_as_documented() {
    let sizes: Vec<(&str, usize)> = fixtures::all()
        .iter()
        .map(|(name, body)| (*name, body.len()))
        .collect();
    let size = |name| sizes.iter().find(|(n, _)| *n == name).map(|(_, s)| *s);
    let typical = size("typical").unwrap_or_default();
    assert!((6 * 1024..=10 * 1024).contains(&typical), "{sizes:?}");
    let huge = size("huge").unwrap_or_default();
    assert!((900 * 1024..=1200 * 1024).contains(&huge), "{sizes:?}");
}
