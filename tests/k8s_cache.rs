//! The service-account cache against the fake API server, through the real kube client, watcher and TLS.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/tls.rs"]
mod tls_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use azwi_webhook::k8s::cache::{
    CacheOptions, CachedServiceAccounts, LookupObserver, LookupOutcome, LookupSource,
};
use azwi_webhook::k8s::client::{client_from_config, ClientOptions};
use azwi_webhook::k8s::live::LiveServiceAccounts;
use azwi_webhook::k8s::service_accounts::{LookupError, ServiceAccounts};
use fake_apiserver::{Endpoint, FakeApiServer, Outage};
use tls_support::assert_eventually;
use tokio::task::JoinHandle;

const CLIENT_ID: &str = "azure.workload.identity/client-id";
const TENANT_ID: &str = "azure.workload.identity/tenant-id";
const DEADLINE: Duration = Duration::from_secs(20);

type Seen = Arc<Mutex<Vec<(LookupSource, LookupOutcome)>>>;

/// A running cache plus what its observer saw; the watch task is aborted on drop.
struct Harness {
    cache: CachedServiceAccounts,
    seen: Seen,
    task: JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Harness {
    fn start(fake: &FakeApiServer) -> Self {
        Self::start_with(fake, CacheOptions::default())
    }

    fn start_with(fake: &FakeApiServer, options: CacheOptions) -> Self {
        let watch_client =
            client_from_config(fake.config(), &ClientOptions::for_watches()).expect("watch client");
        let request_client =
            client_from_config(fake.config(), &ClientOptions::for_requests()).expect("client");
        let seen: Seen = Arc::default();
        let record = seen.clone();
        let observer: LookupObserver = Arc::new(move |source, outcome| {
            record
                .lock()
                .expect("observer lock")
                .push((source, outcome));
        });
        let options = CacheOptions {
            observer: Some(observer),
            ..options
        };
        let (cache, task) = CachedServiceAccounts::spawn_with(
            watch_client,
            LiveServiceAccounts::new(request_client),
            options,
        );
        Self { cache, seen, task }
    }

    async fn synced(fake: &FakeApiServer) -> Self {
        Self::synced_with(fake, CacheOptions::default()).await
    }

    async fn synced_with(fake: &FakeApiServer, options: CacheOptions) -> Self {
        let harness = Self::start_with(fake, options);
        tokio::time::timeout(DEADLINE, harness.cache.wait_synced())
            .await
            .expect("cache synced in time");
        harness
    }

    fn take_seen(&self) -> Vec<(LookupSource, LookupOutcome)> {
        std::mem::take(&mut *self.seen.lock().expect("observer lock"))
    }

    fn client_id(&self, namespace: &str, name: &str) -> Option<String> {
        let meta = self.cache.cached(namespace, name)?;
        Some(
            meta.annotations
                .get(CLIENT_ID)
                .unwrap_or_default()
                .to_owned(),
        )
    }
}

/// Waits until the fake has received `count` watch requests: the fake subscribes a watch to events
/// as it counts the request, so from then on `close_watches` really cuts a live watch.
async fn watching(fake: &FakeApiServer, count: u64) {
    assert_eventually(DEADLINE, "a watch to be open", || {
        fake.count(Endpoint::WatchServiceAccounts) >= count
    })
    .await;
}

#[tokio::test]
async fn serves_listed_and_later_created_service_accounts_from_the_watch() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "listed", &[(CLIENT_ID, "one")]);
    let harness = Harness::synced(&fake).await;
    assert_eq!(harness.cache.len(), 1);

    fake.apply(
        fake_apiserver::FakeServiceAccount::new("apps", "later")
            .annotation(CLIENT_ID, "two")
            .label("team", "x"),
    );
    assert_eventually(DEADLINE, "the new service account", || {
        harness.cache.cached("apps", "later").is_some()
    })
    .await;

    let sa = harness.cache.get("apps", "later").await.expect("found");
    assert_eq!(sa.annotations.get(CLIENT_ID), Some("two"));
    assert_eq!(harness.cache.len(), 2);
    assert_eq!(
        harness.take_seen(),
        vec![(LookupSource::Cache, LookupOutcome::Hit)]
    );
    assert_eq!(fake.count(Endpoint::GetServiceAccount), 0);
    let watch = fake
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::WatchServiceAccounts)
        .expect("a watch request");
    assert_eq!(watch.path, "/api/v1/serviceaccounts");
    assert!(
        watch.query.contains("allowWatchBookmarks=true"),
        "{}",
        watch.query
    );
    assert!(watch
        .accept
        .as_deref()
        .is_some_and(|a| a.contains("as=PartialObjectMetadata")));
}

#[tokio::test]
async fn service_account_not_yet_delivered_by_the_watch_is_fetched_live() {
    let fake = FakeApiServer::start().await;
    let harness = Harness::synced(&fake).await;
    watching(&fake, 1).await;
    // Hold back the re-watch so the new service account can only come from a live GET.
    fake.delay_endpoint(Endpoint::WatchServiceAccounts, Duration::from_secs(60));
    fake.close_watches();
    fake.add_service_account("apps", "fresh", &[(CLIENT_ID, "new")]);

    let sa = harness
        .cache
        .get("apps", "fresh")
        .await
        .expect("found live");

    assert_eq!(sa.annotations.get(CLIENT_ID), Some("new"));
    assert_eq!(fake.count(Endpoint::GetServiceAccount), 1);
    assert_eq!(
        harness.take_seen(),
        vec![
            (LookupSource::Cache, LookupOutcome::Miss),
            (LookupSource::Api, LookupOutcome::Hit)
        ]
    );
    // The live answer is not stored: only the watch fills the cache.
    assert!(harness.cache.cached("apps", "fresh").is_none());
}

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

#[tokio::test]
async fn keeps_only_workload_identity_annotations_on_hits_and_misses() {
    let fake = FakeApiServer::start().await;
    let annotations = [(CLIENT_ID, "c"), (LAST_APPLIED, "{\"big\":\"json\"}")];
    fake.add_service_account("apps", "listed", &annotations);
    let harness = Harness::synced(&fake).await;
    watching(&fake, 1).await;
    fake.delay_endpoint(Endpoint::WatchServiceAccounts, Duration::from_secs(60));
    fake.close_watches();
    fake.add_service_account("apps", "unlisted", &annotations);

    for name in ["listed", "unlisted"] {
        let sa = harness.cache.get("apps", name).await.expect("found");
        let keys: Vec<&str> = sa.annotations.iter().map(|(key, _)| key).collect();
        assert_eq!(keys, vec![CLIENT_ID], "{name}");
    }
    assert_eq!(fake.count(Endpoint::GetServiceAccount), 1);
}

#[tokio::test]
async fn keeps_every_annotation_without_a_prefix() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "sa", &[(CLIENT_ID, "c"), (LAST_APPLIED, "{}")]);
    let options = CacheOptions {
        annotation_prefix: None,
        ..CacheOptions::default()
    };
    let harness = Harness::synced_with(&fake, options).await;

    let sa = harness.cache.get("apps", "sa").await.expect("found");
    assert_eq!(sa.annotations.len(), 2);
}

#[tokio::test]
async fn concurrent_misses_for_one_service_account_make_one_request() {
    let fake = FakeApiServer::start().await;
    let harness = Harness::synced(&fake).await;
    watching(&fake, 1).await;
    fake.delay_endpoint(Endpoint::WatchServiceAccounts, Duration::from_secs(60));
    fake.close_watches();
    fake.add_service_account("apps", "burst", &[(CLIENT_ID, "b")]);
    fake.delay_endpoint(Endpoint::GetServiceAccount, Duration::from_millis(200));

    let lookups = (0..20).map(|_| harness.cache.get("apps", "burst"));
    let results = futures::future::join_all(lookups).await;

    assert!(results.iter().all(Result::is_ok));
    assert_eq!(fake.count(Endpoint::GetServiceAccount), 1);
    let seen = harness.take_seen();
    let api_hits = seen
        .iter()
        .filter(|s| **s == (LookupSource::Api, LookupOutcome::Hit))
        .count();
    assert_eq!(api_hits, 20, "every caller reports its lookup");
}

#[tokio::test]
async fn annotation_update_is_returned_by_the_next_lookup() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "sa", &[(CLIENT_ID, "old")]);
    let harness = Harness::synced(&fake).await;
    assert_eq!(harness.client_id("apps", "sa").as_deref(), Some("old"));

    fake.set_annotations("apps", "sa", &[(CLIENT_ID, "new"), (TENANT_ID, "t")]);
    assert_eventually(DEADLINE, "the updated annotation", || {
        harness.client_id("apps", "sa").as_deref() == Some("new")
    })
    .await;

    let sa = harness.cache.get("apps", "sa").await.expect("found");
    assert_eq!(sa.annotations.get(TENANT_ID), Some("t"));
    assert_eq!(harness.cache.len(), 1);
}

#[tokio::test]
async fn deleted_service_account_is_not_found() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "sa", &[(CLIENT_ID, "x")]);
    let harness = Harness::synced(&fake).await;

    fake.delete_service_account("apps", "sa");
    assert_eventually(DEADLINE, "the deletion", || {
        harness.cache.cached("apps", "sa").is_none()
    })
    .await;

    let error = harness.cache.get("apps", "sa").await.expect_err("deleted");
    assert!(matches!(error, LookupError::NotFound { .. }), "{error:?}");
    assert_eq!(harness.cache.len(), 0);
    assert_eq!(
        harness.take_seen(),
        vec![
            (LookupSource::Cache, LookupOutcome::Miss),
            (LookupSource::Api, LookupOutcome::NotFound)
        ]
    );
}

#[tokio::test]
async fn recovers_after_the_watch_connection_drops() {
    let fake = FakeApiServer::start().await;
    let harness = Harness::synced(&fake).await;

    watching(&fake, 1).await;
    fake.close_watches();
    fake.add_service_account("apps", "after-drop", &[(CLIENT_ID, "1")]);
    assert_eventually(
        DEADLINE,
        "the service account created after the drop",
        || harness.cache.cached("apps", "after-drop").is_some(),
    )
    .await;
    watching(&fake, 2).await;
    fake.close_watches();
    fake.add_service_account("apps", "after-second-drop", &[]);
    assert_eventually(
        DEADLINE,
        "the service account created after the second drop",
        || harness.cache.cached("apps", "after-second-drop").is_some(),
    )
    .await;

    // Resumed from the last resourceVersion, not relisted.
    assert_eq!(fake.count(Endpoint::ListServiceAccounts), 1);
    assert!(fake.count(Endpoint::WatchServiceAccounts) >= 3);
}

#[tokio::test]
async fn relists_after_410_gone_and_forgets_what_was_deleted_meanwhile() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "kept", &[(CLIENT_ID, "k")]);
    fake.add_service_account("apps", "doomed", &[(CLIENT_ID, "d")]);
    let harness = Harness::synced(&fake).await;
    assert_eq!(harness.cache.len(), 2);
    watching(&fake, 1).await;

    // No await between these: the watch cannot see the changes, and must resume from a compacted
    // version, which the fake answers with 410 Gone.
    fake.close_watches();
    fake.delete_service_account("apps", "doomed");
    fake.add_service_account("apps", "added", &[(CLIENT_ID, "a")]);
    fake.compact_watch_history();

    assert_eventually(DEADLINE, "the relisted content", || {
        harness.cache.cached("apps", "added").is_some()
            && harness.cache.cached("apps", "doomed").is_none()
    })
    .await;
    assert_eq!(harness.cache.len(), 2);
    assert!(fake.count(Endpoint::ListServiceAccounts) >= 2);
    assert!(harness.cache.is_synced());

    fake.add_service_account("apps", "after-relist", &[]);
    assert_eventually(DEADLINE, "watching again after the relist", || {
        harness.cache.cached("apps", "after-relist").is_some()
    })
    .await;
}

#[tokio::test]
async fn serves_cached_entries_while_the_api_server_is_down() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "cached", &[(CLIENT_ID, "c")]);
    let harness = Harness::synced(&fake).await;

    fake.set_outage(Outage::Refuse).await;
    let sa = harness
        .cache
        .get("apps", "cached")
        .await
        .expect("from cache");
    assert_eq!(sa.annotations.get(CLIENT_ID), Some("c"));
    let started = Instant::now();
    let missing = tokio::time::timeout(
        Duration::from_secs(6),
        harness.cache.get("apps", "uncached"),
    )
    .await
    .expect("a miss must not hang during an outage");
    assert!(
        matches!(missing, Err(LookupError::Unavailable { .. })),
        "{missing:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        harness.cache.is_synced(),
        "an outage does not unready a synced cache"
    );
    assert_eq!(
        harness.take_seen(),
        vec![
            (LookupSource::Cache, LookupOutcome::Hit),
            (LookupSource::Cache, LookupOutcome::Miss),
            (LookupSource::Api, LookupOutcome::Error)
        ]
    );

    fake.end_outage().await;
    fake.add_service_account("apps", "after-outage", &[]);
    assert_eventually(DEADLINE, "the watch to recover", || {
        harness.cache.cached("apps", "after-outage").is_some()
    })
    .await;
    assert!(harness.cache.is_synced());
}

#[tokio::test]
async fn not_synced_until_the_first_list_and_startup_does_not_wait() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "sa", &[(CLIENT_ID, "x")]);
    fake.set_outage(Outage::Refuse).await;

    let started = Instant::now();
    let harness = Harness::start(&fake);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "spawn returns at once"
    );
    assert!(!harness.cache.is_synced());
    let during = harness.cache.get("apps", "sa").await;
    assert!(
        matches!(during, Err(LookupError::Unavailable { .. })),
        "{during:?}"
    );
    assert!(!harness.cache.is_synced());

    fake.end_outage().await;
    tokio::time::timeout(DEADLINE, harness.cache.wait_synced())
        .await
        .expect("synced once the API server is back");
    assert!(harness.cache.is_synced());
    assert_eq!(harness.client_id("apps", "sa").as_deref(), Some("x"));
}

#[tokio::test]
async fn failing_list_keeps_the_cache_unready_until_it_succeeds() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "sa", &[]);
    fake.fail_times(Endpoint::ListServiceAccounts, 500, 2);

    let harness = Harness::start(&fake);
    assert_eventually(DEADLINE, "the failing lists", || {
        fake.count(Endpoint::ListServiceAccounts) >= 1
    })
    .await;
    assert!(!harness.cache.is_synced());

    tokio::time::timeout(DEADLINE, harness.cache.wait_synced())
        .await
        .expect("synced after the list succeeds");
    assert_eq!(fake.count(Endpoint::ListServiceAccounts), 3);
    assert_eq!(harness.cache.len(), 1);
}

#[tokio::test]
async fn ten_thousand_service_accounts_load_and_are_counted() {
    const COUNT: usize = 10_000;
    let fake = FakeApiServer::start().await;
    for i in 0..COUNT {
        let client_id = format!("{i:08x}-0000-4000-8000-000000000000");
        fake.add_service_account(
            &format!("team-{}", i % 100),
            &format!("workload-{i}"),
            &[
                (CLIENT_ID, client_id.as_str()),
                (TENANT_ID, "72f988bf-86f1-41af-91ab-2d7cd011db47"),
                (
                    "azure.workload.identity/service-account-token-expiration",
                    "3600",
                ),
            ],
        );
    }

    let started = Instant::now();
    let harness = Harness::synced(&fake).await;
    let elapsed = started.elapsed();

    assert_eq!(harness.cache.len(), COUNT);
    assert_eq!(
        fake.count(Endpoint::ListServiceAccounts),
        20,
        "500-object pages"
    );
    let sa = harness
        .cache
        .get("team-42", "workload-9942")
        .await
        .expect("cached");
    assert_eq!(
        sa.annotations.get(CLIENT_ID),
        Some("000026d6-0000-4000-8000-000000000000")
    );
    eprintln!(
        "service-account cache: {COUNT} service accounts synced in {elapsed:?} (start to ready)"
    );
}
