//! Soak: the real serve wiring under continuous mixed load (HTTP/2 and HTTP/1.1, pods with and
//! without identity binding, malformed bodies) while service accounts churn and the serving
//! certificate is rotated through a Secret-volume `..data` swap. No review may fail and memory must
//! stay bounded: VmRSS (of this process, clients included) may not grow by more than
//! [`RSS_GROWTH_LIMIT_KIB`] between the first and the second half of the run, so a leak shows while
//! warm-up growth does not. Ignored by default (it runs for `SOAK_SECS`, default 600):
//!
//!     SOAK_SECS=600 cargo test --release --test soak -- --ignored --nocapture

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/h2.rs"]
mod h2;
#[path = "support/app.rs"]
mod test_app;
#[path = "support/tls.rs"]
mod tls_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use serde_json::{json, Value};
use test_app::{peak_rss_kib, rss_kib, TestApp};
use tls_support::{post, Http, SecretVolume, TestCa};

/// Growth of VmRSS from the middle of the run to the end that the soak tolerates.
const RSS_GROWTH_LIMIT_KIB: u64 = 4 * 1024;

/// One review in this many is malformed (truncated JSON).
const MALFORMED_EVERY: u64 = 7;

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

fn review(uid: u64, service_account: &str, binding: bool) -> Vec<u8> {
    if uid.is_multiple_of(MALFORMED_EVERY) {
        let mut valid = review(uid + 1, service_account, binding);
        valid.truncate(valid.len() / 2);
        return valid;
    }
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "soak-", "namespace": "ns",
                     "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": service_account,
                 "containers": [{"name": "app", "image": "app", "env": [{"name": "A", "value": "1"}]}]}
    });
    if binding {
        pod["metadata"]["annotations"] =
            json!({"azure.workload.identity/use-identity-binding": "true"});
    }
    test_app::pod_review("admission.k8s.io/v1", &format!("uid-{uid}"), &pod)
}

/// A review passes when it gets HTTP 200 with its uid and an answer: admitted with a patch, or
/// denied because its service account was churned away for a moment (400 naming it, never 500).
/// A malformed body passes when it gets HTTP 400 with an AdmissionReview-shaped denial.
fn judge(status: u16, body: &[u8], uid: u64) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let response = &value["response"];
    if uid.is_multiple_of(MALFORMED_EVERY) {
        return status == 400 && response["allowed"] == false && response["status"]["code"] == 400;
    }
    let churned_away = response["status"]["code"] == 400
        && response["status"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not found"));
    status == 200
        && response["uid"] == format!("uid-{uid}")
        && ((response["allowed"] == true && response["patch"].is_string()) || churned_away)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak: long-running; run with SOAK_SECS and --ignored"]
async fn mixed_load_with_churn_and_certificate_reloads() {
    let secs: u64 = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let fake = FakeApiServer::start().await;
    for i in 0..200 {
        fake.add_service_account(
            "ns",
            &format!("sa-{i}"),
            &[("azure.workload.identity/client-id", "cid")],
        );
    }
    fake.add_rule(
        fake_apiserver::RbacRule::allow()
            .verb("use-managed-identity")
            .api_group("cid.wi.aks.azure.com"),
    );
    let ca = TestCa::new("soak ca");
    let leaf = ca.issue_server(&["localhost"]);
    let mut volume = SecretVolume::new(&leaf.cert_pem, &leaf.key_pem);
    let config = test_app::serve_config(volume.path(), true, "azure-workload-identity-system");
    let settings = azwi_webhook::mutate::settings::Settings {
        identity_binding: Some(azwi_webhook::mutate::settings::IdentityBinding {
            switch_key: "azure.workload.identity/use-identity-binding".into(),
            audience: "api://AKSIdentityBinding".into(),
            token_proxy: "https://proxy.example:443".into(),
            sni_name: "".into(),
            ca: azwi_webhook::mutate::settings::ClusterCa::None,
        }),
        ..test_app::settings()
    };
    let app = TestApp::start(config, settings, fake.config());
    assert!(app.wait_ready(Duration::from_secs(10)).await);

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    let uid = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for client in 0..4u64 {
        let (stop, counts, uid, ca_pem, addr) = (
            stop.clone(),
            counts.clone(),
            uid.clone(),
            ca.pem.clone(),
            app.addr,
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = uid.fetch_add(1, Ordering::Relaxed);
                let body = review(n, &format!("sa-{}", n % 200), n % 3 == 0);
                // A fresh connection per request for half the clients: every certificate reload
                // is exercised by new handshakes.
                let result = if client % 2 == 0 {
                    match h2::session(addr, &ca_pem).await {
                        Ok(session) => h2::post(session, "/mutate-v1-pod?timeout=10s", body).await,
                        Err(e) => Err(e),
                    }
                } else {
                    post(addr, &ca_pem, "/mutate-v1-pod?timeout=10s", &body, Http::V1)
                        .await
                        .map(|(status, body, _)| (status, body))
                };
                let passed = matches!(&result, Ok((status, body)) if judge(*status, body, n));
                let counter = if passed { &counts.ok } else { &counts.failed };
                if !passed {
                    eprintln!("failed review {n}: {result:?}");
                }
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_start = rss_kib();
    let mut rss_middle = None;
    let mut reloads = 0u64;
    let mut churn = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        if rss_middle.is_none() && started.elapsed() >= Duration::from_secs(secs / 2) {
            rss_middle = Some(rss_kib());
        }
        // Churn: annotations change, an account is deleted and re-created.
        let i = churn % 200;
        fake.set_annotations(
            "ns",
            &format!("sa-{i}"),
            &[
                ("azure.workload.identity/client-id", "cid"),
                ("azure.workload.identity/tenant-id", &format!("t-{churn}")),
            ],
        );
        churn += 1;
        if churn.is_multiple_of(50) {
            let j = (churn / 50) % 200;
            fake.delete_service_account("ns", &format!("sa-{j}"));
            fake.add_service_account(
                "ns",
                &format!("sa-{j}"),
                &[("azure.workload.identity/client-id", "cid")],
            );
        }
        if churn.is_multiple_of(100) {
            let next = ca.issue_server(&["localhost"]);
            volume.update(&next.cert_pem, &next.key_pem);
            reloads += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("client task");
    }
    let rss_end = rss_kib();
    let rss_middle = rss_middle.unwrap_or(rss_start);
    let (ok, failed) = (
        counts.ok.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    );
    eprintln!(
        "soak {secs}s: {ok} reviews ok, {failed} failed, {churn} churn steps, {reloads} certificate reloads, \
         VmRSS {rss_start} KiB after warm-up, {rss_middle} KiB half-way, {rss_end} KiB at the end, peak {} KiB",
        peak_rss_kib()
    );
    assert_eq!(failed, 0);
    assert!(ok > 0);
    assert!(
        rss_end < rss_middle + RSS_GROWTH_LIMIT_KIB,
        "VmRSS grew from {rss_middle} KiB half-way to {rss_end} KiB at the end"
    );
    assert_eq!(app.readyz().await, Some(200));
    app.stop().await;
}
