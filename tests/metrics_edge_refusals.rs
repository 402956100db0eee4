//! Every request to the admission path is counted in `azwi_admission_requests_total`, including
//! those the server answers itself: bodies refused before the handler (413, 408, 400) and handler
//! panics (500). Driven through the real TLS listener.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/app.rs"]
mod test_app;
#[path = "support/tls.rs"]
mod tls_support;

use std::sync::Arc;
use std::time::Duration;

use azwi_webhook::admission::Admitter;
use azwi_webhook::k8s::service_accounts::InMemoryServiceAccounts;
use azwi_webhook::metrics::Metrics;
use azwi_webhook::review::{Refusal, ReviewHandler, ReviewReply};
use azwi_webhook::server::{router_with_limit, Readiness, ServeOptions, DEFAULT_MAX_IN_FLIGHT};
use azwi_webhook::tls::TlsMinVersion;
use bytes::Bytes;
use fake_apiserver::FakeApiServer;
use futures::future::BoxFuture;
use serde_json::Value;
use test_app::TestApp;
use tls_support::{
    connect, generate_ca_and_leaf, metric_sum, post, static_tls, ClientOpts, Http, TestPki,
    TestServer,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REQUESTS: &str = "azwi_admission_requests_total";
const DEADLINE: Duration = Duration::from_secs(10);

struct Running {
    app: TestApp,
    pki: TestPki,
    _fake: FakeApiServer,
}

async fn start() -> Running {
    let fake = FakeApiServer::start_with_workload().await;
    let pki = generate_ca_and_leaf(&["localhost"]);
    let config = test_app::serve_config(pki.path(), true, "azure-workload-identity-system");
    let app = TestApp::start(config, test_app::settings(), fake.config());
    assert!(app.wait_ready(DEADLINE).await, "webhook never became ready");
    Running {
        app,
        pki,
        _fake: fake,
    }
}

/// Opens an HTTP/1.1 connection and sends a request head announcing a 100-byte body, then only
/// 10 bytes of it.
async fn partial_body(
    running: &Running,
    path: &str,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tls = connect(
        running.app.addr,
        &ClientOpts::new(&running.pki.ca.pem, Http::V1),
    )
    .await
    .expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"apiVers"
    );
    tls.write_all(head.as_bytes()).await.expect("write");
    tls.flush().await.expect("flush");
    tls
}

/// The status code of the response read from `tls` (until the server closes or the deadline).
async fn response_status(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> u16 {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = tokio::time::timeout(DEADLINE, async {
        loop {
            match tls.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&chunk[..n]),
            }
            if raw.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no response within {DEADLINE:?}");
    let text = String::from_utf8_lossy(&raw);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

#[tokio::test]
async fn oversized_bodies_are_counted_as_body_too_large() {
    let running = start().await;
    for http in [Http::V2, Http::V1] {
        let (status, _, _) = post(
            running.app.addr,
            &running.pki.ca.pem,
            "/mutate-v1-pod?timeout=10s",
            &vec![b' '; 8 << 20],
            http,
        )
        .await
        .expect("request");
        assert_eq!(status, 413, "{http:?}");
    }
    let labels = ["outcome=\"malformed\"", "reason=\"body_too_large\""];
    assert_eq!(running.app.metric(REQUESTS, &labels).await, 2);
    assert_eq!(running.app.metric(REQUESTS, &[]).await, 2);
    running.app.stop().await;
}

#[tokio::test]
async fn bodies_not_received_in_time_are_counted_as_body_timeout() {
    let running = start().await;
    // The API server's budget (1 s here) bounds the wait for the body.
    let mut stalled = partial_body(&running, "/mutate-v1-pod?timeout=1s").await;
    assert_eq!(response_status(&mut stalled).await, 408);
    let labels = ["outcome=\"malformed\"", "reason=\"body_timeout\""];
    assert_eq!(running.app.metric(REQUESTS, &labels).await, 1);
    assert_eq!(running.app.metric(REQUESTS, &[]).await, 1);
    running.app.stop().await;
}

#[tokio::test]
async fn bodies_broken_off_are_counted_as_malformed() {
    let running = start().await;
    let mut broken = partial_body(&running, "/mutate-v1-pod?timeout=10s").await;
    // Ends the stream with 90 bytes of the body still owed.
    broken.shutdown().await.expect("shutdown");
    let labels = ["outcome=\"malformed\"", "reason=\"malformed_review\""];
    let counted = tls_support::eventually(DEADLINE, || async {
        running.app.metric(REQUESTS, &labels).await == 1
    })
    .await;
    assert!(counted, "the broken-off body was not counted");
    assert_eq!(running.app.metric(REQUESTS, &[]).await, 1);
    running.app.stop().await;
}

#[tokio::test]
async fn handled_and_refused_requests_add_up() {
    let running = start().await;
    let review = test_app::pod_review("admission.k8s.io/v1", "uid-1", &test_app::workload_pod());
    let (status, _, _) = post(
        running.app.addr,
        &running.pki.ca.pem,
        "/mutate-v1-pod?timeout=10s",
        &review,
        Http::V2,
    )
    .await
    .expect("request");
    assert_eq!(status, 200);
    let (status, _, _) = post(
        running.app.addr,
        &running.pki.ca.pem,
        "/mutate-v1-pod?timeout=10s",
        &vec![b' '; 8 << 20],
        Http::V2,
    )
    .await
    .expect("request");
    assert_eq!(status, 413);
    let mut stalled = partial_body(&running, "/mutate-v1-pod?timeout=1s").await;
    assert_eq!(response_status(&mut stalled).await, 408);
    assert_eq!(running.app.metric(REQUESTS, &[]).await, 3);
    running.app.stop().await;
}

/// Panics inside the review; everything else is the webhook's own handler, which answers (and
/// counts) the 500 the server refuses the request with.
struct Panics(Admitter);

impl ReviewHandler for Panics {
    fn refuse(&self, refusal: Refusal, message: &str) -> ReviewReply {
        self.0.refuse(refusal, message)
    }

    fn review(&self, _: Bytes, _: Option<Duration>) -> BoxFuture<'_, ReviewReply> {
        Box::pin(async { panic!("boom") })
    }
}

#[tokio::test]
async fn handler_panics_are_counted_as_denied_handler_panicked() {
    let pki = generate_ca_and_leaf(&["localhost"]);
    let metrics = Metrics::new().expect("metrics");
    let admitter = Admitter::new(
        Arc::new(test_app::settings()),
        Arc::new(InMemoryServiceAccounts::default()),
        metrics.clone(),
    );
    let app = router_with_limit(Arc::new(Panics(admitter)), DEFAULT_MAX_IN_FLIGHT);
    let options = ServeOptions {
        shutdown_delay: Duration::ZERO,
        ..ServeOptions::default()
    };
    let mut server = TestServer::start(
        app,
        static_tls(&pki, TlsMinVersion::V1_3, None),
        Readiness::new(),
        options,
    );
    for http in [Http::V2, Http::V1] {
        let (status, body, _) = post(
            server.addr,
            &pki.ca.pem,
            "/mutate-v1-pod?timeout=10s",
            b"{}",
            http,
        )
        .await
        .expect("request");
        assert_eq!(status, 500, "{http:?}");
        let review: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(review["response"]["status"]["code"], 500);
    }
    let scrape = metrics.render();
    let labels = ["outcome=\"denied\"", "reason=\"handler_panicked\""];
    assert_eq!(metric_sum(&scrape, REQUESTS, &labels), 2, "{scrape}");
    assert_eq!(metric_sum(&scrape, REQUESTS, &[]), 2, "{scrape}");
    server.trigger_shutdown();
}
