//! Graceful rollout of the real `serve` wiring under continuous admission load.
//!
//! Clients model a kube-apiserver: HTTP/2 connections multiplexing two streams and HTTP/1.1
//! keep-alive connections, each also opening a fresh connection now and then. A request that
//! errors without the webhook having processed it (GOAWAY'd stream, keep-alive connection closed
//! by the drain, connection refused after the listener closed) is one the API server would send to
//! another replica: "retried", not failed. Whether the webhook processed a request is read from its
//! own per-request log line (captured in-process), so the classification is an oracle, not a guess.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/log_buffer.rs"]
mod log_buffer;
#[path = "support/app.rs"]
mod test_app;
#[path = "support/tls.rs"]
mod tls_support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use azwi_webhook::config::ServeConfig;
use bytes::Bytes;
use fake_apiserver::{Endpoint, FakeApiServer};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use log_buffer::Buffer;
use serde_json::{json, Value};
use test_app::TestApp;
use tls_support::{connect, generate_ca_and_leaf, get_plain, ClientOpts, Http, TestPki};

const SHUTDOWN_DELAY: Duration = Duration::from_millis(500);
const PATH: &str = "/mutate-v1-pod?timeout=10s";
/// Generous: no request here should take more than milliseconds, but CI machines stall.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Every log line of this test binary, as written by the webhook's own JSON subscriber. The serve
/// tasks run on runtime worker threads, so the subscriber must be the global one.
fn logs() -> &'static Buffer {
    static LOGS: OnceLock<Buffer> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Buffer::default();
        let filter = tracing_subscriber::EnvFilter::new("azwi_webhook=info");
        let subscriber = azwi_webhook::logging::subscriber(filter, captured.clone());
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
        captured
    })
}

/// uids the webhook logged an admission review for, i.e. requests its handler processed.
fn processed_uids() -> HashSet<String> {
    logs()
        .text()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "admission review")
        .filter_map(|line| line["uid"].as_str().map(str::to_owned))
        .collect()
}

struct Running {
    app: TestApp,
    pki: TestPki,
    fake: FakeApiServer,
}

async fn start() -> Running {
    start_with(|_| {}).await
}

/// As [`start`], with `adjust` applied to the serve configuration.
async fn start_with(adjust: impl FnOnce(&mut ServeConfig)) -> Running {
    logs();
    let fake = FakeApiServer::start_with_workload().await;
    let pki = generate_ca_and_leaf(&["localhost"]);
    let mut config = test_app::serve_config(pki.path(), true, "azure-workload-identity-system");
    config.shutdown_delay = SHUTDOWN_DELAY;
    adjust(&mut config);
    let app = TestApp::start(config, test_app::settings(), fake.config());
    assert!(app.wait_ready(Duration::from_secs(10)).await, "never ready");
    Running { app, pki, fake }
}

fn review(uid: &str, service_account: &str) -> Bytes {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "web-", "namespace": "ns",
                     "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": service_account,
                 "containers": [{"name": "app", "image": "app"}]}
    });
    Bytes::from(test_app::pod_review("admission.k8s.io/v1", uid, &pod))
}

enum Conn {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

async fn open(addr: SocketAddr, opts: &ClientOpts) -> Result<Conn, tls_support::BoxError> {
    let io = TokioIo::new(connect(addr, opts).await?);
    Ok(match opts.http {
        Http::V1 => {
            let (sender, conn) = http1::handshake(io).await?;
            tokio::spawn(conn);
            Conn::H1(sender)
        }
        Http::V2 => {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            Conn::H2(sender)
        }
    })
}

/// Sends one review; `Ok` carries the HTTP status and parsed body, `Err` a transport error.
async fn send(conn: &mut Conn, body: Bytes) -> Result<(u16, Value), tls_support::BoxError> {
    let request = hyper::Request::post(format!("https://localhost{PATH}"))
        .header("content-type", "application/json")
        .body(Full::new(body))?;
    let exchange = async {
        let response = match conn {
            Conn::H1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
            Conn::H2(sender) => {
                // A clone per stream, so two streams share the connection concurrently.
                let mut sender = sender.clone();
                sender.ready().await?;
                sender.send_request(request).await?
            }
        };
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok::<_, tls_support::BoxError>((status, serde_json::from_slice(&bytes)?))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange).await?
}

/// What every client saw, classified once the run is over.
#[derive(Default)]
struct Tally {
    /// Completion time of each complete, correct 200 answer.
    ok: Vec<Instant>,
    /// Answers that came back wrong (status, uid, verdict).
    wrong: Vec<String>,
    /// Transport errors: (uid, when, error).
    errors: Vec<(String, Instant, String)>,
    /// New connections refused once the replica stopped listening.
    refused: usize,
    /// Connection attempts that failed before the drain could explain it.
    connect_errors: Vec<String>,
}

struct Load {
    addr: SocketAddr,
    ca: String,
    stop: AtomicBool,
    /// When the drain (closing connections, then the listener) may begin: trigger + delay.
    drain_from: OnceLock<Instant>,
    tally: Mutex<Tally>,
}

impl Load {
    fn record(&self, uid: &str, outcome: Result<(u16, Value), tls_support::BoxError>) -> bool {
        let mut tally = self.tally.lock().unwrap();
        match outcome {
            Ok((200, body))
                if body["response"]["uid"] == uid && body["response"]["allowed"] == true =>
            {
                tally.ok.push(Instant::now());
                true
            }
            Ok((status, body)) => {
                tally.wrong.push(format!("{uid}: {status} {body}"));
                true
            }
            Err(e) => {
                tally
                    .errors
                    .push((uid.to_owned(), Instant::now(), e.to_string()));
                false
            }
        }
    }

    /// A connect failure once the drain has begun is the listener closing: the API server would
    /// pick another endpoint, so this client is done with the replica.
    fn connect_failed(&self, error: tls_support::BoxError) {
        let mut tally = self.tally.lock().unwrap();
        if self.drain_from.get().is_some_and(|t| Instant::now() >= *t) {
            tally.refused += 1;
        } else {
            tally.connect_errors.push(error.to_string());
        }
    }
}

/// One client: a persistent connection (reopened after the server closes it), and every 8th
/// round trip on a brand-new connection. HTTP/2 rounds send two streams at once.
async fn client(id: usize, http: Http, load: Arc<Load>) {
    let opts = ClientOpts::new(&load.ca, http);
    let mut persistent: Option<Conn> = None;
    for round in 0.. {
        if load.stop.load(Ordering::Relaxed) {
            return;
        }
        let fresh = round % 8 == 7;
        let mut conn = match persistent.take().filter(|_| !fresh) {
            Some(conn) => conn,
            None => match open(load.addr, &opts).await {
                Ok(conn) => conn,
                Err(e) => return load.connect_failed(e),
            },
        };
        let uid = |stream: usize| format!("c{id}-r{round}-s{stream}");
        let healthy = if let Conn::H2(_) = conn {
            let (a, b) = (uid(0), uid(1));
            let mut twin = match &conn {
                Conn::H2(sender) => Conn::H2(sender.clone()),
                Conn::H1(_) => unreachable!(),
            };
            let (ra, rb) = tokio::join!(
                send(&mut conn, review(&a, "workload")),
                send(&mut twin, review(&b, "workload"))
            );
            load.record(&a, ra) & load.record(&b, rb)
        } else {
            let a = uid(0);
            let result = send(&mut conn, review(&a, "workload")).await;
            load.record(&a, result)
        };
        if healthy && !fresh {
            persistent = Some(conn);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_under_load_loses_no_accepted_request() {
    let running = start().await;
    let (health, addr) = (running.app.health_addr, running.app.addr);
    let load = Arc::new(Load {
        addr,
        ca: running.pki.ca.pem.clone(),
        stop: AtomicBool::new(false),
        drain_from: OnceLock::new(),
        tally: Mutex::new(Tally::default()),
    });
    let mut clients = tokio::task::JoinSet::new();
    for id in 0..6 {
        let http = if id % 2 == 0 { Http::V2 } else { Http::V1 };
        clients.spawn(client(id, http, load.clone()));
    }
    let loaded = Instant::now() + Duration::from_secs(20);
    while load.tally.lock().unwrap().ok.is_empty() {
        assert!(Instant::now() < loaded, "no load before shutdown");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // SIGTERM.
    let triggered = Instant::now();
    load.drain_from.set(triggered + SHUTDOWN_DELAY).unwrap();
    let stopping = tokio::spawn(running.app.stop());
    let unready = loop {
        if get_plain(health, "/readyz").await.ok().map(|r| r.0) != Some(200) {
            break Instant::now();
        }
        // Readiness must fail before the drain starts, so the endpoints drop the pod first.
        assert!(
            triggered.elapsed() < SHUTDOWN_DELAY,
            "still ready when the drain starts"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let (status, text) = get_plain(health, "/readyz")
        .await
        .expect("health listener up");
    assert_eq!(status, 503);
    assert!(text.contains("shutting down"), "{text}");

    tokio::time::timeout(Duration::from_secs(15), stopping)
        .await
        .expect("serve returns")
        .expect("serve Ok (asserted by TestApp::stop)");
    let serve_took = triggered.elapsed();
    load.stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(10), async {
        while clients.join_next().await.is_some() {}
    })
    .await
    .expect("clients finish");

    let processed = processed_uids();
    let tally = std::mem::take(&mut *load.tally.lock().unwrap());
    let drain_from = triggered + SHUTDOWN_DELAY;
    let (mut retried, mut failed) = (0, tally.wrong.clone());
    for (uid, at, error) in &tally.errors {
        if processed.contains(uid) || *at < drain_from {
            failed.push(format!("{uid} at +{:?}: {error}", *at - triggered));
        } else {
            retried += 1;
        }
    }
    failed.extend(tally.connect_errors.iter().cloned());
    let during_delay = tally
        .ok
        .iter()
        .filter(|t| **t > unready && **t < drain_from)
        .count();
    eprintln!(
        "rollout: ok={} (during the delay: {during_delay}), failed={}, retried-unprocessed={retried}, \
         refused-after-close={}, readiness failed after {:?}, serve returned after {serve_took:?}",
        tally.ok.len(),
        failed.len(),
        tally.refused,
        unready - triggered
    );
    assert!(failed.is_empty(), "failed requests: {failed:#?}");
    assert!(during_delay > 0, "nothing served during the shutdown delay");
    assert!(
        serve_took < SHUTDOWN_DELAY + Duration::from_secs(6),
        "serve took {serve_took:?}"
    );
    // Every request the handler processed was answered in full.
    assert!(processed.len() >= tally.ok.len());
    assert!(
        no_secret_material(&running.pki),
        "a log line holds key or CA material"
    );
    drop(running.fake);
}

/// The serving key and CA never reach the logs (they pass through the certificate reloader).
fn no_secret_material(pki: &TestPki) -> bool {
    let text = logs().text();
    let key_body = pki.leaf.key_pem.lines().nth(1).unwrap_or("-");
    let ca_body = pki.ca.pem.lines().nth(1).unwrap_or("-");
    !text.contains("PRIVATE KEY") && !text.contains(key_body) && !text.contains(ca_body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_in_flight_reviews_complete_during_the_drain() {
    let running = start().await;
    // An uncached service account costs a live GET; the fake holds it for 4 s (under the kube
    // client's 5 s read timeout), well past the 500 ms delay, so both reviews are in flight when the
    // listener closes.
    running
        .fake
        .delay_endpoint(Endpoint::GetServiceAccount, Duration::from_secs(4));
    let (addr, ca) = (running.app.addr, running.pki.ca.pem.clone());
    let mut in_flight = Vec::new();
    for http in [Http::V2, Http::V1] {
        let opts = ClientOpts::new(&ca, http);
        let uid = format!("slow-{http:?}");
        in_flight.push(tokio::spawn(async move {
            let mut conn = open(addr, &opts).await.expect("connect");
            let answer = send(&mut conn, review(&uid, &format!("new-sa-{http:?}"))).await;
            (uid, answer, Instant::now())
        }));
    }
    let fake = &running.fake;
    assert!(
        tls_support::eventually(Duration::from_secs(5), || async {
            fake.count(Endpoint::GetServiceAccount) >= 2
        })
        .await,
        "the reviews never reached the API server"
    );

    let triggered = Instant::now();
    let stopping = tokio::spawn(running.app.stop());
    assert!(
        tls_support::eventually(Duration::from_secs(5), || async {
            tokio::net::TcpStream::connect(addr).await.is_err()
        })
        .await,
        "listener still open"
    );
    assert!(
        in_flight.iter().all(|t| !t.is_finished()),
        "the reviews must still be in flight when the listener closes"
    );
    for task in in_flight {
        let (uid, answer, _) = task.await.expect("client task");
        let (status, body) = answer.unwrap_or_else(|e| panic!("{uid}: {e}"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["response"]["uid"], uid.as_str());
        // The service account does not exist: a complete, reasoned denial, not a dropped stream.
        assert_eq!(body["response"]["allowed"], false);
        assert_eq!(body["response"]["status"]["code"], 400, "{body}");
    }
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("serve returns after the drain")
        .expect("serve Ok");
    assert!(triggered.elapsed() >= Duration::from_millis(1500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_ends_at_the_shutdown_drain_timeout() {
    let drain = Duration::from_millis(300);
    let running = start_with(|config| config.shutdown_drain_timeout = drain).await;
    // Held far past the drain: the handler would wait 8 s (80 % of the 10 s budget) for it.
    running
        .fake
        .delay_endpoint(Endpoint::GetServiceAccount, Duration::from_secs(30));
    let opts = ClientOpts::new(&running.pki.ca.pem, Http::V2);
    let addr = running.app.addr;
    let stuck = tokio::spawn(async move {
        let mut conn = open(addr, &opts).await.expect("connect");
        send(&mut conn, review("stuck", "new-sa")).await
    });
    let fake = &running.fake;
    assert!(
        tls_support::eventually(Duration::from_secs(5), || async {
            fake.count(Endpoint::GetServiceAccount) >= 1
        })
        .await,
        "the review never reached the API server"
    );
    let triggered = Instant::now();
    running.app.stop().await;
    let took = triggered.elapsed();
    // Delay (500 ms) + drain (300 ms), with room for a loaded machine; below the handler's 8 s.
    assert!(
        took < Duration::from_secs(6),
        "serve took {took:?} to return"
    );
    assert!(took >= SHUTDOWN_DELAY + drain, "returned after {took:?}");
    let answer = stuck.await.expect("client task");
    assert!(answer.is_err(), "the cut review got an answer: {answer:?}");
}
