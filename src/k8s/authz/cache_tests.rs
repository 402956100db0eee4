//! Cache and single-flight behaviour with an in-memory authorizer on tokio's paused clock, so TTLs
//! and deadlines are exact and no test sleeps for real.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::*;
use futures::future::BoxFuture;

/// Answers `allowed` unless the client ID starts with "deny"; "fail" errors, "panic" panics.
struct Fake {
    calls: AtomicU64,
    delay: Mutex<Duration>,
}

impl Fake {
    fn new(delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            calls: AtomicU64::new(0),
            delay: Mutex::new(delay),
        })
    }

    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Authorizer for Fake {
    fn check<'a>(
        &'a self,
        _namespace: &'a str,
        _service_account: &'a str,
        client_id: &'a str,
        _deadline: Instant,
    ) -> BoxFuture<'a, Result<Decision, AuthzError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let delay = *self.delay.lock().expect("delay lock");
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            if client_id.starts_with("panic") {
                panic!("authorizer bug");
            }
            if client_id.starts_with("fail") {
                return Err(AuthzError::Unavailable {
                    reason: "boom".into(),
                });
            }
            Ok(Decision {
                allowed: !client_id.starts_with("deny"),
                reason: String::new(),
            })
        })
    }
}

fn config() -> CacheConfig {
    CacheConfig {
        allowed_ttl: Duration::from_secs(300),
        denied_ttl: Duration::from_secs(10),
        max_entries: 100,
        call_timeout: Duration::from_secs(5),
    }
}

fn cached(fake: &Arc<Fake>, config: CacheConfig) -> CachedAuthorizer {
    CachedAuthorizer::new(fake.clone(), config)
}

async fn check(authz: &CachedAuthorizer, client_id: &str) -> CheckReport {
    authz
        .check(
            "ns",
            "sa",
            client_id,
            Instant::now() + Duration::from_secs(8),
        )
        .await
}

#[tokio::test(start_paused = true)]
async fn allowed_answers_are_cached_for_the_allowed_ttl() {
    let fake = Fake::new(Duration::from_millis(20));
    let authz = cached(&fake, config());
    let first = check(&authz, "id").await;
    assert_eq!((first.result_label(), first.cached), ("allowed", false));
    assert_eq!(first.duration, Duration::from_millis(20));
    tokio::time::advance(Duration::from_secs(299)).await;
    let second = check(&authz, "id").await;
    assert_eq!((second.result_label(), second.cached), ("allowed", true));
    assert_eq!(fake.calls(), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(!check(&authz, "id").await.cached);
    assert_eq!(fake.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn denied_answers_expire_after_the_shorter_denied_ttl() {
    let fake = Fake::new(Duration::ZERO);
    let authz = cached(&fake, config());
    assert_eq!(check(&authz, "deny-1").await.result_label(), "denied");
    tokio::time::advance(Duration::from_secs(9)).await;
    assert!(check(&authz, "deny-1").await.cached);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(!check(&authz, "deny-1").await.cached);
    assert_eq!(fake.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn errors_are_never_cached() {
    let fake = Fake::new(Duration::ZERO);
    let authz = cached(&fake, config());
    for _ in 0..3 {
        let report = check(&authz, "fail").await;
        assert_eq!((report.result_label(), report.cached), ("error", false));
    }
    assert_eq!(fake.calls(), 3);
    assert!(authz.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_cache_never_grows_past_its_bound_and_keeps_recent_entries() {
    let fake = Fake::new(Duration::ZERO);
    let authz = cached(
        &fake,
        CacheConfig {
            max_entries: 10,
            ..config()
        },
    );
    for i in 0..25 {
        check(&authz, &format!("id-{i}")).await;
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(authz.len() <= 10, "{} entries", authz.len());
    }
    assert!(check(&authz, "id-24").await.cached, "newest entry kept");
    assert!(!check(&authz, "id-0").await.cached, "oldest entry evicted");
}

#[tokio::test(start_paused = true)]
async fn expired_entries_are_evicted_before_live_ones() {
    let fake = Fake::new(Duration::ZERO);
    let authz = cached(
        &fake,
        CacheConfig {
            max_entries: 3,
            ..config()
        },
    );
    check(&authz, "keep").await;
    check(&authz, "deny-a").await;
    check(&authz, "deny-b").await;
    tokio::time::advance(Duration::from_secs(11)).await;
    check(&authz, "new").await;
    assert_eq!(authz.len(), 2);
    assert!(check(&authz, "keep").await.cached);
}

#[tokio::test(start_paused = true)]
async fn concurrent_checks_share_one_call() {
    let fake = Fake::new(Duration::from_millis(50));
    let authz = cached(&fake, config());
    let reports = futures::future::join_all((0..1000).map(|_| check(&authz, "id"))).await;
    assert_eq!(fake.calls(), 1);
    assert!(reports.iter().all(|r| r.result_label() == "allowed"));
    assert_eq!(reports.iter().filter(|r| !r.coalesced).count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_past_its_deadline_times_out_without_cancelling_the_call() {
    let fake = Fake::new(Duration::from_secs(2));
    let authz = cached(&fake, config());
    let hurried = authz.check("ns", "sa", "id", Instant::now() + Duration::from_secs(1));
    let patient = authz.check("ns", "sa", "id", Instant::now() + Duration::from_secs(8));
    let (hurried, patient) = tokio::join!(hurried, patient);
    assert_eq!(hurried.result, Err(AuthzError::Timeout { waited_ms: 1000 }));
    assert_eq!(patient.result_label(), "allowed");
    assert_eq!(fake.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_call_still_fills_the_cache() {
    let fake = Fake::new(Duration::from_secs(2));
    let authz = cached(&fake, config());
    let report = authz
        .check("ns", "sa", "id", Instant::now() + Duration::from_secs(1))
        .await;
    assert_eq!(report.result_label(), "error");
    tokio::time::advance(Duration::from_secs(2)).await;
    tokio::task::yield_now().await;
    assert!(check(&authz, "id").await.cached);
    assert_eq!(fake.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_call_slower_than_the_call_timeout_is_an_error_for_everyone() {
    let fake = Fake::new(Duration::from_secs(60));
    let authz = cached(&fake, config());
    let report = authz
        .check("ns", "sa", "id", Instant::now() + Duration::from_secs(30))
        .await;
    assert_eq!(report.result, Err(AuthzError::Timeout { waited_ms: 5000 }));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_authorizer_is_an_error_and_does_not_wedge_the_key() {
    let fake = Fake::new(Duration::ZERO);
    let authz = cached(&fake, config());
    assert_eq!(check(&authz, "panic").await.result_label(), "error");
    assert_eq!(check(&authz, "panic").await.result_label(), "error");
    assert_eq!(fake.calls(), 2, "the second check made a fresh call");
}

#[tokio::test(start_paused = true)]
async fn caching_can_be_disabled() {
    let fake = Fake::new(Duration::ZERO);
    let authz = cached(
        &fake,
        CacheConfig {
            max_entries: 0,
            ..config()
        },
    );
    check(&authz, "id").await;
    check(&authz, "id").await;
    assert_eq!(fake.calls(), 2);
}
