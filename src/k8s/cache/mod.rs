//! The service-account metadata cache: a cluster-wide, metadata-only watch of ServiceAccounts feeding
//! an in-memory index, with a live GET on a miss.
//!
//! - Memory: only [`ServiceAccountMeta`] (namespace, name, annotations) is kept; managedFields, labels
//!   and everything else are dropped as each event arrives. By default only the
//!   `azure.workload.identity/` annotations are kept too ([`CacheOptions::annotation_prefix`]): the
//!   mutation reads nothing else, and other annotations (`kubectl.kubernetes.io/last-applied-configuration`
//!   alone is often larger than everything we need) would be most of the cache's memory. A service
//!   account left without annotations (most of a cluster's) is kept as its bare name, packed with
//!   the others of its namespace (about 30 bytes for a 20-character name; see `index`).
//! - Misses: a service account created a moment before its pod may not have reached the cache yet, so
//!   a miss asks the API server ([`LiveServiceAccounts::fetch`]); concurrent misses for one key share
//!   one request. The answer is *not* stored: the watch delivers the object with its resourceVersion,
//!   and storing a GET result could overwrite a newer watch event with an older read.
//! - Outages: the watch retries forever, backing off from 0.8 s to 30 s (reset only once the API
//!   server answers again), while the index keeps serving what it has; only misses fail (as
//!   [`LookupError::Unavailable`]).
//! - Readiness: [`CachedServiceAccounts::is_synced`] turns true after the first full list and stays
//!   true (a relist after `410 Gone` keeps serving the old content until the new list is complete).

/// Also paces the certificate rotator's watches (`certs::watch`).
pub(crate) mod backoff;
mod index;
mod inflight;
mod names;
mod watch;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use kube::runtime::watcher;
use kube::Client;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

use super::live::LiveServiceAccounts;
use super::service_accounts::{LookupError, ServiceAccounts};
use crate::mutate::names::ANNOTATION_PREFIX;
use crate::mutate::service_account::ServiceAccountMeta;
use futures::future::BoxFuture;
use index::Index;
use inflight::Inflight;

/// Where a lookup was answered (the `source` label of `azwi_service_account_lookups_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupSource {
    /// The in-memory index.
    Cache,
    /// A live GET after a cache miss.
    Api,
}

impl LookupSource {
    pub const ALL: [LookupSource; 2] = [LookupSource::Cache, LookupSource::Api];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cache => "cache",
            Self::Api => "api",
        }
    }
}

/// What a lookup found (the `result` label of `azwi_service_account_lookups_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookupOutcome {
    /// Found (cache or API).
    Hit,
    /// Not in the cache; an API lookup follows and is reported separately.
    Miss,
    /// The API server says the service account does not exist.
    NotFound,
    /// The API server could not answer.
    Error,
}

impl LookupOutcome {
    pub const ALL: [LookupOutcome; 4] = [
        LookupOutcome::Hit,
        LookupOutcome::Miss,
        LookupOutcome::NotFound,
        LookupOutcome::Error,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::NotFound => "not_found",
            Self::Error => "error",
        }
    }
}

/// Called once per step of every lookup: `(Cache, Hit)` for a hit; `(Cache, Miss)` then
/// `(Api, Hit | NotFound | Error)` for a miss. Coalesced callers each report their own `(Api, …)`,
/// so the counter counts lookups, not API requests. Called inline on the admission path: keep it
/// cheap (incrementing a Prometheus counter is).
pub type LookupObserver = Arc<dyn Fn(LookupSource, LookupOutcome) + Send + Sync>;

/// What the watch task reports for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchActivity {
    /// A (re)list starts: the first one, then one after each watch that cannot be resumed.
    List,
    /// A list or watch request failed; the next attempt waits for the backoff.
    Failure,
}

/// Receives [`WatchActivity`] from the watch task.
pub type WatchObserver = Arc<dyn Fn(WatchActivity) + Send + Sync>;

/// Knobs for [`CachedServiceAccounts::spawn_with`].
#[derive(Clone)]
pub struct CacheOptions {
    /// Lookup reporting for metrics; `None` reports nothing.
    pub observer: Option<LookupObserver>,
    /// Watch (re)lists and failures, for metrics; `None` reports nothing.
    pub watch_observer: Option<WatchObserver>,
    /// The watcher configuration; the default asks for bookmarks, 500-object list pages and kube's
    /// 290 s watch timeout.
    pub watcher: watcher::Config,
    /// Keep only annotations whose key starts with this (on cache and live answers alike, so a hit
    /// and a miss look the same); `None` keeps every annotation.
    pub annotation_prefix: Option<String>,
}

/// The annotations the mutation reads all live under this prefix.
pub const DEFAULT_ANNOTATION_PREFIX: &str = ANNOTATION_PREFIX;

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            observer: None,
            watch_observer: None,
            watcher: watcher::Config::default(),
            annotation_prefix: Some(DEFAULT_ANNOTATION_PREFIX.to_owned()),
        }
    }
}

/// A [`ServiceAccounts`] backed by a watch-fed index; cheap to clone (all clones share one index).
#[derive(Clone)]
pub struct CachedServiceAccounts {
    shared: Arc<Shared>,
}

/// State shared between the lookups and the watch task.
struct Shared {
    index: RwLock<Index>,
    /// Mirrors `index.len()` so the metrics gauge never takes the lock.
    len: AtomicUsize,
    synced: signal::Sender<bool>,
    live: LiveServiceAccounts,
    inflight: Inflight,
    observer: Option<LookupObserver>,
    watch_observer: Option<WatchObserver>,
    annotation_prefix: Option<String>,
}

impl CachedServiceAccounts {
    /// Starts the watch on the current Tokio runtime and returns at once, without waiting for the API
    /// server (an unreachable one means "not ready yet", never a failed start).
    ///
    /// `watch_client` should be built with [`super::client::ClientOptions::for_watches`] (no read
    /// timeout); `live` (built on a [`super::client::ClientOptions::for_requests`] client) answers
    /// misses. The task runs until the handle is aborted.
    pub fn spawn(watch_client: Client, live: LiveServiceAccounts) -> (Self, JoinHandle<()>) {
        Self::spawn_with(watch_client, live, CacheOptions::default())
    }

    /// [`Self::spawn`] with a lookup observer or a custom watcher configuration.
    pub fn spawn_with(
        watch_client: Client,
        live: LiveServiceAccounts,
        options: CacheOptions,
    ) -> (Self, JoinHandle<()>) {
        let (synced, _) = signal::channel(false);
        let shared = Arc::new(Shared {
            index: RwLock::new(Index::default()),
            len: AtomicUsize::new(0),
            synced,
            live,
            inflight: Inflight::default(),
            observer: options.observer,
            watch_observer: options.watch_observer,
            annotation_prefix: options.annotation_prefix,
        });
        let task = tokio::spawn(watch::run(shared.clone(), watch_client, options.watcher));
        (Self { shared }, task)
    }

    /// Whether the first full list has completed; once true, stays true.
    pub fn is_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Waits until [`Self::is_synced`] is true (wrap in a timeout for a deadline).
    pub async fn wait_synced(&self) {
        let mut synced = self.shared.synced.subscribe();
        // The sender lives in `shared`, which we hold, so the channel cannot close under us.
        let _ = synced.wait_for(|synced| *synced).await;
    }

    /// Number of cached service accounts (for the `azwi_service_account_cache_objects` gauge).
    pub fn len(&self) -> usize {
        self.shared.len.load(Ordering::Relaxed)
    }

    /// Whether the cache holds no service account.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cached entry only, never asking the API server.
    pub fn cached(&self, namespace: &str, name: &str) -> Option<Arc<ServiceAccountMeta>> {
        self.shared.read().get(namespace, name)
    }

    fn observe(&self, source: LookupSource, outcome: LookupOutcome) {
        if let Some(observer) = &self.shared.observer {
            observer(source, outcome);
        }
    }
}

impl ServiceAccounts for CachedServiceAccounts {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<ServiceAccountMeta>, LookupError>> {
        Box::pin(async move {
            if let Some(hit) = self.ready(namespace, name) {
                return Ok(hit);
            }
            self.observe(LookupSource::Cache, LookupOutcome::Miss);
            let shared = &self.shared;
            let outcome = shared
                .inflight
                .run(namespace, name, || async move {
                    let meta = shared.live.fetch(namespace, name).await?;
                    Ok(Arc::new(shared.trim(meta)))
                })
                .await;
            let result = match &outcome {
                Ok(_) => LookupOutcome::Hit,
                Err(LookupError::NotFound { .. }) => LookupOutcome::NotFound,
                Err(LookupError::Unavailable { .. }) => LookupOutcome::Error,
            };
            self.observe(LookupSource::Api, result);
            outcome
        })
    }

    fn ready(&self, namespace: &str, name: &str) -> Option<Arc<ServiceAccountMeta>> {
        let hit = self.cached(namespace, name)?;
        self.observe(LookupSource::Cache, LookupOutcome::Hit);
        Some(hit)
    }
}

impl Shared {
    fn observe_watch(&self, activity: WatchActivity) {
        if let Some(observer) = &self.watch_observer {
            observer(activity);
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Index> {
        // Index updates are single map operations, so a panic elsewhere cannot leave it half-changed.
        self.index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies `change` under the write lock and refreshes the length mirror.
    fn update(&self, change: impl FnOnce(&mut Index)) {
        let mut index = self
            .index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut index);
        self.len.store(index.len(), Ordering::Relaxed);
    }

    /// Drops the annotations lookups never read.
    fn trim(&self, mut meta: ServiceAccountMeta) -> ServiceAccountMeta {
        if let Some(prefix) = &self.annotation_prefix {
            meta.annotations.retain_prefix(prefix);
        }
        meta
    }

    /// Records the end of a full list; true only the first time.
    fn mark_synced(&self) -> bool {
        self.synced
            .send_if_modified(|synced| !std::mem::replace(synced, true))
    }
}
