//! HTTP/2 abuse against the real `serve` wiring: rapid reset (CVE-2023-44487) and 10,000 streams
//! on one connection. The server runs in this process, so its memory is read from
//! /proc/self/status; each scenario asserts a bound on VmRSS growth, and afterwards the replica is
//! ready and mutates the next review.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/app.rs"]
mod test_app;
#[path = "support/tls.rs"]
mod tls_support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use fake_apiserver::FakeApiServer;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use test_app::{rss_kib, TestApp};
use tls_support::{generate_ca_and_leaf, ClientOpts, Http, TestPki};

const PATH: &str = "/mutate-v1-pod?timeout=10s";
const MIB: u64 = 1024;

fn review(uid: &str) -> Vec<u8> {
    test_app::pod_review(
        "admission.k8s.io/v1",
        uid,
        &json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": "web-", "namespace": "ns",
                         "labels": {"azure.workload.identity/use": "true"}},
            "spec": {"serviceAccountName": "workload",
                     "containers": [{"name": "app", "image": "app"}]}
        }),
    )
}

async fn assert_healthy(app: &TestApp, pki: &TestPki) {
    assert_eq!(app.readyz().await, Some(200), "not ready after abuse");
    for http in [Http::V2, Http::V1] {
        let (status, body, _) =
            tls_support::post(app.addr, &pki.ca.pem, PATH, &review("after"), http)
                .await
                .expect("valid review after abuse");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert!(body["response"]["patch"].is_string(), "{body}");
    }
}

/// Opens streams and cancels each at once, as fast as the connection allows. Returns how many
/// streams were opened before the server closed the connection (or `attempts`).
async fn rapid_reset(app: &TestApp, pki: &TestPki, attempts: usize) -> (usize, Option<h2::Reason>) {
    let tls = tls_support::connect(app.addr, &ClientOpts::new(&pki.ca.pem, Http::V2))
        .await
        .expect("connect");
    let (client, conn) = h2::client::handshake(tls).await.expect("h2 handshake");
    let driver = tokio::spawn(conn);
    let mut opened = 0;
    let mut client = Some(client);
    while opened < attempts {
        let Some(ready) = client.take() else { break };
        let Ok(mut ready) = ready.ready().await else {
            break;
        };
        let request = hyper::Request::post(format!("https://localhost{PATH}"))
            .body(())
            .expect("request");
        match ready.send_request(request, false) {
            Ok((_response, mut stream)) => {
                stream.send_reset(h2::Reason::CANCEL);
                opened += 1;
                client = Some(ready);
            }
            Err(_) => break,
        }
    }
    drop(client);
    // The connection ends either by the server's GOAWAY or because the client is done with it.
    let ended = tokio::time::timeout(Duration::from_secs(10), driver)
        .await
        .expect("connection ends")
        .expect("driver task");
    let reason = ended.err().and_then(|e| e.reason());
    (opened, reason)
}

/// `count` concurrent reviews on one HTTP/2 connection; returns how many got HTTP 200.
async fn many_streams(app: &TestApp, pki: &TestPki, count: usize) -> usize {
    let tls = tls_support::connect(app.addr, &ClientOpts::new(&pki.ca.pem, Http::V2))
        .await
        .expect("connect");
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tls))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    let body = Bytes::from(review("stream"));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let mut sender = sender.clone();
        let body = body.clone();
        tasks.spawn(async move {
            let request = hyper::Request::post(format!("https://localhost{PATH}"))
                .header("content-type", "application/json")
                .body(Full::new(body))
                .expect("request");
            let response = sender.send_request(request).await.ok()?;
            let status = response.status().as_u16();
            response.into_body().collect().await.ok()?;
            Some(status)
        });
    }
    let mut ok = 0;
    while let Some(joined) = tasks.join_next().await {
        if joined.expect("task") == Some(200) {
            ok += 1;
        }
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_reset_and_10k_streams_keep_memory_bounded_and_the_server_healthy() {
    let fake = FakeApiServer::start_with_workload().await;
    let pki = generate_ca_and_leaf(&["localhost"]);
    let config = test_app::serve_config(pki.path(), true, "azure-workload-identity-system");
    let app = TestApp::start(config, test_app::settings(), fake.config());
    assert!(app.wait_ready(Duration::from_secs(10)).await, "not ready");
    assert_healthy(&app, &pki).await;
    let baseline = rss_kib();

    // Rapid reset on five connections: hyper's pending-accept-reset limit (20) must answer with
    // GOAWAY ENHANCE_YOUR_CALM long before 10,000 cancelled streams are processed.
    let started = Instant::now();
    for _ in 0..5 {
        let (opened, reason) = rapid_reset(&app, &pki, 10_000).await;
        eprintln!("rapid reset: {opened} streams opened, connection ended with {reason:?}");
        assert!(
            opened < 10_000 || reason.is_some(),
            "the server let 10,000 cancelled streams through without closing the connection"
        );
    }
    let after_reset = rss_kib();
    eprintln!(
        "rapid reset: {:?}, VmRSS {} -> {} KiB",
        started.elapsed(),
        baseline,
        after_reset
    );
    assert!(
        after_reset < baseline + 32 * MIB,
        "rapid reset grew VmRSS by {} KiB",
        after_reset - baseline
    );
    assert_healthy(&app, &pki).await;

    let started = Instant::now();
    let ok = many_streams(&app, &pki, 10_000).await;
    let after_streams = rss_kib();
    eprintln!(
        "10,000 streams on one connection: {ok} ok in {:?}, VmRSS {} -> {} KiB",
        started.elapsed(),
        baseline,
        after_streams
    );
    assert_eq!(ok, 10_000, "every stream gets its answer");
    assert!(
        after_streams < baseline + 96 * MIB,
        "10,000 streams grew VmRSS by {} KiB",
        after_streams - baseline
    );
    assert_healthy(&app, &pki).await;
    app.stop().await;
}
