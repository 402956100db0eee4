//! Connection abuse against the real `serve` wiring: slowloris (HTTP/1.1 headers trickled, and
//! TCP connections that never start TLS), hundreds of idle connections, and stalled request
//! bodies. The replica must keep answering while they are held, close the slow ones on its
//! timeouts, and keep memory bounded (VmRSS of this process, which hosts the server).

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/app.rs"]
mod test_app;
#[path = "support/tls.rs"]
mod tls_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fake_apiserver::FakeApiServer;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use test_app::{rss_kib, TestApp};
use tls_support::{generate_ca_and_leaf, ClientOpts, Http, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PATH: &str = "/mutate-v1-pod?timeout=10s";
const MIB: u64 = 1024;

fn review() -> Vec<u8> {
    test_app::pod_review(
        "admission.k8s.io/v1",
        "uid-conn",
        &json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "ns",
                         "labels": {"azure.workload.identity/use": "true"}},
            "spec": {"serviceAccountName": "workload",
                     "containers": [{"name": "app", "image": "app"}]}
        }),
    )
}

async fn start(max_in_flight: usize) -> (TestApp, TestPki, FakeApiServer) {
    let fake = FakeApiServer::start_with_workload().await;
    let pki = generate_ca_and_leaf(&["localhost"]);
    let mut config = test_app::serve_config(pki.path(), true, "azure-workload-identity-system");
    config.max_in_flight_reviews = max_in_flight;
    let app = TestApp::start(config, test_app::settings(), fake.config());
    assert!(app.wait_ready(Duration::from_secs(10)).await, "not ready");
    (app, pki, fake)
}

/// A valid review answered 200 with a patch, within `within`; returns the latency.
async fn served_within(addr: SocketAddr, pki: &TestPki, within: Duration) -> Duration {
    let started = Instant::now();
    let (status, body, _) = tokio::time::timeout(
        within,
        tls_support::post(addr, &pki.ca.pem, PATH, &review(), Http::V2),
    )
    .await
    .expect("a valid review is answered in time")
    .expect("request");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    started.elapsed()
}

/// True once the server has closed `stream` (EOF or reset).
async fn closed<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, within: Duration) -> bool {
    let mut buf = [0u8; 512];
    let until = Instant::now() + within;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408 or similar before closing is fine; keep reading to the end.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_connections_are_bounded_and_do_not_starve_reviews() {
    let (app, pki, _fake) = start(1000).await;
    served_within(app.addr, &pki, Duration::from_secs(5)).await;
    let baseline = rss_kib();

    // 100 TCP connections that never send a ClientHello (closed by the TLS handshake timeout).
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(tokio::net::TcpStream::connect(app.addr).await.expect("tcp"));
    }
    // 100 HTTP/1.1 connections trickling one header byte every 500 ms (header read timeout).
    let mut trickling = Vec::new();
    for _ in 0..100 {
        let mut tls = tls_support::connect(app.addr, &ClientOpts::new(&pki.ca.pem, Http::V1))
            .await
            .expect("connect");
        tls.write_all(b"POST /mutate-v1-pod HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .expect("write");
        trickling.push(tls);
    }
    let trickle = tokio::spawn(async move {
        let mut open = trickling;
        let mut survivors_after = Vec::new();
        let started = Instant::now();
        // Trickle for up to 20 s; a connection the server closed fails its write and is dropped.
        while !open.is_empty() && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut still = Vec::new();
            for mut tls in open {
                if tls.write_all(b"X").await.is_ok() && tls.flush().await.is_ok() {
                    still.push(tls);
                }
            }
            open = still;
            survivors_after.push((started.elapsed(), open.len()));
        }
        (open.len(), started.elapsed())
    });
    // 300 idle HTTP/2 connections with a completed handshake (the API server keeps such pools).
    let mut idle = Vec::new();
    for _ in 0..300 {
        let tls = tls_support::connect(app.addr, &ClientOpts::new(&pki.ca.pem, Http::V2))
            .await
            .expect("connect");
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .expect("h2 handshake");
        idle.push((sender, tokio::spawn(conn)));
    }
    let held = rss_kib();
    let latency = served_within(app.addr, &pki, Duration::from_secs(2)).await;
    eprintln!(
        "holding 100 silent + 100 trickling + 300 idle h2 connections: VmRSS {baseline} -> {held} KiB, review latency {latency:?}"
    );
    assert!(
        held < baseline + 48 * MIB,
        "500 held connections grew VmRSS by {} KiB",
        held - baseline
    );

    // The default timeouts (TLS handshake 10 s, header read 10 s) close the slow ones.
    for mut tcp in silent {
        assert!(
            closed(&mut tcp, Duration::from_secs(15)).await,
            "a silent TCP connection outlived the TLS handshake timeout"
        );
    }
    let (left, after) = trickle.await.expect("trickle task");
    eprintln!("trickling connections still open after {after:?}: {left}");
    assert_eq!(
        left, 0,
        "trickled headers kept connections open past the header read timeout"
    );

    // Idle HTTP/2 connections are kept (by design) and still work.
    let (mut sender, _) = idle.pop().expect("an idle connection");
    let request = hyper::Request::post(format!("https://localhost{PATH}"))
        .body(http_body_util::Full::new(bytes::Bytes::from(review())))
        .expect("request");
    let response = sender
        .send_request(request)
        .await
        .expect("idle connection works");
    assert_eq!(response.status(), 200);
    drop(idle);
    served_within(app.addr, &pki, Duration::from_secs(2)).await;
    assert_eq!(app.readyz().await, Some(200));
    eprintln!("VmRSS at the end: {} KiB", rss_kib());
    app.stop().await;
}

/// Opens `count` HTTP/1.1 requests whose headers promise a body that never comes.
async fn stall_bodies(
    app: &TestApp,
    pki: &TestPki,
    count: usize,
) -> Vec<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut stalled = Vec::new();
    for _ in 0..count {
        let mut tls = tls_support::connect(app.addr, &ClientOpts::new(&pki.ca.pem, Http::V1))
            .await
            .expect("connect");
        tls.write_all(
            b"POST /mutate-v1-pod HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
        )
        .await
        .expect("write");
        stalled.push(tls);
    }
    stalled
}

/// Stalled bodies: headers complete, `Content-Length` promised, body never sent. Each holds an
/// in-flight slot (counted before the body is read) only until the body read timeout frees it.
#[tokio::test]
async fn stalled_request_bodies_do_not_starve_reviews() {
    let max_in_flight = 8;
    let (app, pki, _fake) = start(max_in_flight).await;
    let stalled = stall_bodies(&app, &pki, max_in_flight).await;
    // Within the API server's longest budget (30 s) a real review must get through again.
    let ok = tls_support::eventually(Duration::from_secs(30), || async {
        matches!(
            tls_support::post(app.addr, &pki.ca.pem, PATH, &review(), Http::V2).await,
            Ok((200, _, _))
        )
    })
    .await;
    assert!(
        ok,
        "{max_in_flight} stalled bodies shed every review with 429 for 30 s"
    );
    drop(stalled);
    app.stop().await;
}

/// The same stall shown quickly, without the ignore: while stalled bodies are held, reviews are
/// shed with an AdmissionReview-shaped 429 (not a hang), and they are served again as soon as the
/// stalled connections go away.
#[tokio::test]
async fn stalled_bodies_cost_429s_not_hangs_and_release_their_slots_on_disconnect() {
    let max_in_flight = 8;
    let (app, pki, _fake) = start(max_in_flight).await;
    let stalled = stall_bodies(&app, &pki, max_in_flight).await;
    let shed = tls_support::eventually(Duration::from_secs(5), || async {
        matches!(
            tls_support::post(app.addr, &pki.ca.pem, PATH, &review(), Http::V2).await,
            Ok((429, _, _))
        )
    })
    .await;
    assert!(shed, "stalled bodies did not occupy the in-flight slots");
    drop(stalled);
    served_within(app.addr, &pki, Duration::from_secs(5)).await;
    app.stop().await;
}
