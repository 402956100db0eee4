//! The service-account watch under a long API server outage: every retry backs off (0.8 s doubling
//! to 30 s), so a failing API server sees a handful of requests a minute from each replica, not one
//! a second; one warning when failures start, no "recovered" line until the API server really
//! answers, and exactly one when it does.
//!
//! Runs a minute of outage in four failure modes at once (one fake API server each), then ends the
//! outages and waits for every cache to sync.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/log_buffer.rs"]
mod log_buffer;
#[path = "support/tls.rs"]
mod tls_support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use azwi_webhook::k8s::cache::{CacheOptions, CachedServiceAccounts, WatchActivity, WatchObserver};
use azwi_webhook::k8s::client::{client_from_config, ClientOptions};
use azwi_webhook::k8s::live::LiveServiceAccounts;
use fake_apiserver::{Endpoint, FakeApiServer, Outage};
use log_buffer::Buffer;

const OUTAGE: Duration = Duration::from_secs(60);
/// The backoff allows 7 or 8 attempts in a minute (0.8 + 1.6 + 3.2 + 6.4 + 12.8 + 25.6 s, plus up
/// to 20 % jitter each); a relist per second would be 60.
const MAX_ATTEMPTS: u64 = 10;
/// After the outage the next attempt comes within the longest delay (30 s plus jitter).
const RECOVERY: Duration = Duration::from_secs(50);

struct Watched {
    cache: CachedServiceAccounts,
    task: tokio::task::JoinHandle<()>,
    /// Failed list or watch requests, as the watch reports them for metrics.
    failures: Arc<AtomicU64>,
}

fn spawn(fake: &FakeApiServer) -> Watched {
    let watches = client_from_config(fake.config(), &ClientOptions::for_watches()).expect("client");
    let requests =
        client_from_config(fake.config(), &ClientOptions::for_requests()).expect("client");
    let failures = Arc::new(AtomicU64::new(0));
    let counted = failures.clone();
    let observer: WatchObserver = Arc::new(move |activity| {
        if activity == WatchActivity::Failure {
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    let options = CacheOptions {
        watch_observer: Some(observer),
        ..CacheOptions::default()
    };
    let (cache, task) =
        CachedServiceAccounts::spawn_with(watches, LiveServiceAccounts::new(requests), options);
    Watched {
        cache,
        task,
        failures,
    }
}

fn count(logs: &Buffer, message: &str) -> usize {
    logs.lines()
        .iter()
        .filter(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(message))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minute_of_outage_costs_a_few_backed_off_requests_and_one_warning_per_cache() {
    let logs = Buffer::default();
    tracing::subscriber::set_global_default(azwi_webhook::logging::subscriber(
        tracing_subscriber::EnvFilter::new("info"),
        logs.clone(),
    ))
    .expect("the only subscriber of this test binary");

    let unreachable = FakeApiServer::start_with_workload().await;
    unreachable.set_outage(Outage::Refuse).await;
    let forbidden = FakeApiServer::start_with_workload().await;
    forbidden.fail(Endpoint::ListServiceAccounts, 403);
    let erroring = FakeApiServer::start_with_workload().await;
    erroring.fail(Endpoint::ListServiceAccounts, 500);
    let slow = FakeApiServer::start_with_workload().await;
    slow.delay_endpoint(Endpoint::ListServiceAccounts, Duration::from_secs(5));
    slow.fail(Endpoint::ListServiceAccounts, 503);
    let modes = [
        ("unreachable", &unreachable),
        ("403 on list", &forbidden),
        ("500 on list", &erroring),
        ("slow 503 on list", &slow),
    ];

    let started = Instant::now();
    let caches: Vec<_> = modes.iter().map(|(_, fake)| spawn(fake)).collect();
    tokio::time::sleep(OUTAGE).await;
    // Failures first: each was a request counted before it, so an attempt failing between the two
    // reads cannot make the failures outrun the requests.
    let failures: Vec<u64> = caches
        .iter()
        .map(|w| w.failures.load(Ordering::Relaxed))
        .collect();
    let requests: Vec<u64> = modes
        .iter()
        .map(|(_, fake)| fake.count(Endpoint::ListServiceAccounts))
        .collect();
    eprintln!(
        "in {:?} of outage: list requests received {requests:?}, failures seen {failures:?}",
        started.elapsed()
    );
    for (((mode, _), requests), failures) in modes.iter().zip(&requests).zip(&failures) {
        assert!(
            (2..=MAX_ATTEMPTS).contains(failures),
            "{mode}: {failures} failed attempts in a minute"
        );
        // What the API server received: one request per failure, plus the one in flight and one
        // that may arrive between the two reads (a refused connection reaches nothing). The kube
        // client does not retry behind the watch.
        let expected = if *mode == "unreachable" {
            0..=0
        } else {
            *failures..=failures + 2
        };
        assert!(
            expected.contains(requests),
            "{mode}: {requests} requests, {failures} failures"
        );
    }
    assert!(caches.iter().all(|w| !w.cache.is_synced()));
    assert_eq!(
        count(&logs, "service-account watch failing"),
        modes.len(),
        "one warning per cache:\n{}",
        logs.text()
    );
    assert_eq!(
        count(&logs, "service-account watch recovered"),
        0,
        "no recovery was real:\n{}",
        logs.text()
    );

    unreachable.end_outage().await;
    for (_, fake) in &modes {
        fake.clear_faults();
    }
    for ((mode, _), watched) in modes.iter().zip(&caches) {
        tokio::time::timeout(RECOVERY, watched.cache.wait_synced())
            .await
            .unwrap_or_else(|_| panic!("{mode}: not synced {RECOVERY:?} after the outage"));
    }
    assert_eq!(
        count(&logs, "service-account watch recovered"),
        modes.len(),
        "one recovery line per cache:\n{}",
        logs.text()
    );
    for watched in caches {
        watched.task.abort();
    }
}
