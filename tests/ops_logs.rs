//! The admission log line, as SREs consume it: one JSON object per review from the webhook's own
//! subscriber (`logging::subscriber`), carrying uid, namespace, pod (name or generateName),
//! service account, outcome, reason and duration; and nothing secret, at info or debug.

#[path = "support/log_buffer.rs"]
mod log_buffer;
#[path = "support/tls.rs"]
mod tls_support;

use std::sync::Arc;

use azwi_webhook::admission::Admitter;
use azwi_webhook::k8s::service_accounts::InMemoryServiceAccounts;
use azwi_webhook::metrics::Metrics;
use azwi_webhook::mutate::service_account::ServiceAccountMeta;
use azwi_webhook::mutate::settings::{ClusterCa, IdentityBinding, ProxySettings, Settings};
use log_buffer::Buffer;
use serde_json::{json, Value};
use tracing_subscriber::EnvFilter;

/// A value no log line may ever contain (it stands for a password in a pod's env).
const SECRET_ENV: &str = "hunter2-do-not-log-0f9e8d7c";
/// Likewise for an annotation value.
const SECRET_ANNOTATION: &str = "annotation-secret-5a4b3c2d";

/// Identity binding on, with the cluster CA configured inline (`AZURE_KUBERNETES_CA_DATA`).
fn admitter(ca_pem: &str) -> Admitter {
    let settings = Settings {
        audience: "api://AzureADTokenExchange".into(),
        tenant_id: "tenant-1".into(),
        authority_host: "https://login.microsoftonline.com/".into(),
        identity_binding: Some(IdentityBinding {
            switch_key: "azure.workload.identity/use-identity-binding".into(),
            audience: "api://AKSIdentityBinding".into(),
            token_proxy: "https://proxy.example:443".into(),
            sni_name: "sni.example".into(),
            ca: ClusterCa::Data(ca_pem.into()),
        }),
        proxy: ProxySettings::default(),
    };
    let account = ServiceAccountMeta {
        namespace: "ns".into(),
        name: "workload".into(),
        annotations: [("azure.workload.identity/client-id", "client-1")].into(),
    };
    Admitter::new(
        Arc::new(settings),
        Arc::new(InMemoryServiceAccounts::from_iter([account])),
        Metrics::new().expect("metrics"),
    )
}

fn pod(metadata: Value, service_account: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": {"serviceAccountName": service_account, "containers": [{
            "name": "app", "image": "app",
            "env": [{"name": "DB_PASSWORD", "value": SECRET_ENV}]
        }]}
    })
}

fn review(uid: &str, operation: &str, object: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "ns", "operation": operation, "object": object
        }
    }))
    .expect("json")
}

/// Runs `reviews` through the handler with the production subscriber at `level`, on this thread.
async fn logged(level: &str, ca_pem: &str, reviews: &[Vec<u8>]) -> (Buffer, Vec<Vec<u8>>) {
    let buffer = Buffer::default();
    let subscriber = azwi_webhook::logging::subscriber(EnvFilter::new(level), buffer.clone());
    let _guard = tracing::subscriber::set_default(subscriber);
    let admitter = admitter(ca_pem);
    let mut bodies = Vec::new();
    for body in reviews {
        bodies.push(admitter.admit(body, None).await.body);
    }
    (buffer, bodies)
}

fn admission_line<'a>(lines: &'a [Value], uid: &str) -> &'a Value {
    let mine: Vec<&Value> = lines.iter().filter(|l| l["uid"] == uid).collect();
    assert_eq!(mine.len(), 1, "one line per review for {uid}: {lines:#?}");
    mine[0]
}

#[tokio::test]
async fn every_admission_line_carries_the_fields_sres_filter_on() {
    let ca = tls_support::TestCa::new("cluster ca").pem;
    let ib = json!({"azure.workload.identity/use-identity-binding": "true"});
    let named = pod(
        json!({"name": "web-0", "namespace": "ns", "annotations": ib}),
        "workload",
    );
    let generated = pod(
        json!({"generateName": "web-", "namespace": "ns"}),
        "workload",
    );
    let missing_sa = pod(json!({"name": "web-1", "namespace": "ns"}), "nobody");
    let (buffer, _) = logged(
        "info",
        &ca,
        &[
            review("u-mutated", "CREATE", &named),
            review("u-generated", "CREATE", &generated),
            review("u-denied", "CREATE", &missing_sa),
            review("u-ignored", "UPDATE", &named),
        ],
    )
    .await;
    let lines = buffer.lines();
    for (uid, pod, service_account, outcome, reason) in [
        ("u-mutated", "web-0", "workload", "mutated", "none"),
        ("u-generated", "web-", "workload", "mutated", "none"),
        (
            "u-denied",
            "web-1",
            "nobody",
            "denied",
            "service_account_not_found",
        ),
        ("u-ignored", "", "", "ignored", "none"),
    ] {
        let line = admission_line(&lines, uid);
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["message"], "admission review", "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        assert_eq!(line["pod"], pod, "{line}");
        assert_eq!(line["service_account"], service_account, "{line}");
        assert_eq!(line["outcome"], outcome, "{line}");
        assert_eq!(line["reason"], reason, "{line}");
        assert!(line["duration_us"].is_u64(), "{line}");
        // Not a pod CREATE: the handler never reads the object, so it knows no subject.
        let namespace = if outcome == "ignored" { "" } else { "ns" };
        assert_eq!(line["namespace"], namespace, "{line}");
    }
}

/// Outcome, reason and duration are on *every* admission line, the malformed-body one included.
#[tokio::test]
async fn malformed_review_line_has_reason_and_duration() {
    let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-bad","operation":5}}"#;
    let (buffer, _) = logged("info", "", &[body.to_vec()]).await;
    let lines = buffer.lines();
    let line = admission_line(&lines, "u-bad");
    assert_eq!(line["outcome"], "malformed", "{line}");
    assert_eq!(line["reason"], "malformed_review", "{line}");
    assert!(line["duration_us"].is_u64(), "{line}");
}

#[tokio::test]
async fn no_payload_or_secret_reaches_the_logs_at_info_or_debug() {
    let ca = tls_support::TestCa::new("cluster ca").pem;
    let metadata = json!({
        "name": "web-0", "namespace": "ns",
        "annotations": {
            "azure.workload.identity/use-identity-binding": "true",
            "example.com/credentials": SECRET_ANNOTATION
        }
    });
    let object = pod(metadata, "workload");
    for level in ["info", "debug"] {
        let (buffer, bodies) = logged(level, &ca, &[review("u-secret", "CREATE", &object)]).await;
        let response: Value = serde_json::from_slice(&bodies[0]).expect("json");
        assert_eq!(response["response"]["allowed"], true, "{response}");
        // The CA really went into the patch, so it was in the handler's hands.
        let patch = response["response"]["patch"].as_str().expect("patch");
        let text = buffer.text();
        assert!(!text.is_empty(), "nothing logged at {level}");
        let ca_body = ca.lines().nth(1).expect("PEM body");
        for forbidden in [
            SECRET_ENV,
            SECRET_ANNOTATION,
            ca_body,
            "BEGIN CERTIFICATE",
            patch,
        ] {
            assert!(
                !text.contains(forbidden),
                "{level} logs contain {forbidden:?}:\n{text}"
            );
        }
        // No request or response body either: keys that only occur in the payloads.
        for payload_key in [
            "\"containers\"",
            "\"serviceAccountName\"",
            "AZURE_CLIENT_ID",
        ] {
            assert!(
                !text.contains(payload_key),
                "{level}: {payload_key}\n{text}"
            );
        }
    }
}

/// A review the one-pass scanner declines (here an escape in the pod's name, which it does not
/// decode) is still admitted, by serde_json's reading, and the fallback is said at debug only: the
/// line to look for when CPU per review rises. A plain review takes the scanner: no such line.
#[tokio::test]
async fn a_review_decoded_by_the_serde_fallback_is_said_at_debug() {
    let object = pod(json!({"name": "web-0", "namespace": "ns"}), "workload");
    let plain = review("u-plain", "CREATE", &object);
    let escaped = String::from_utf8(review("u-escaped", "CREATE", &object))
        .expect("UTF-8")
        .replace(r#""web-0""#, r#""web\u002d0""#)
        .into_bytes();
    assert!(
        azwi_webhook::admission::wire::scanned(&plain)
            && !azwi_webhook::admission::wire::scanned(&escaped),
        "the scanner reads the plain review and declines the escaped one"
    );
    const FALLBACK: &str = "decoded by serde";
    for level in ["info", "debug"] {
        let (buffer, bodies) = logged(level, "", std::slice::from_ref(&escaped)).await;
        let response: Value = serde_json::from_slice(&bodies[0]).expect("json");
        assert_eq!(response["response"]["allowed"], true, "{response}");
        assert_eq!(admission_line(&buffer.lines(), "u-escaped")["pod"], "web-0");
        assert_eq!(
            buffer.text().contains(FALLBACK),
            level == "debug",
            "{level}"
        );
    }
    let (buffer, _) = logged("debug", "", &[plain]).await;
    assert!(!buffer.text().contains(FALLBACK), "{}", buffer.text());
}
