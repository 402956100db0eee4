//! The task feeding the index from a metadata-only watch of every ServiceAccount.

use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PartialObjectMeta;
use kube::runtime::watcher;
use kube::{Api, Client};

use super::backoff::Backoff;
use super::index::Index;
use super::{Shared, WatchActivity};
use crate::k8s::live::service_account_meta;
use crate::mutate::service_account::ServiceAccountMeta;

/// While the watch keeps failing, repeat the warning at most this often (the backoff alone still
/// allows two a minute, which is noise during a long API server outage).
const WARN_EVERY: Duration = Duration::from_secs(300);

/// Runs the watch forever: errors are logged and retried with [`Backoff`] (0.8 s doubling to 30 s,
/// plus jitter), and the index keeps serving meanwhile.
pub(super) async fn run(shared: Arc<Shared>, client: Client, config: watcher::Config) {
    let api = Api::<PartialObjectMeta<ServiceAccount>>::all(client);
    // The watcher retries as soon as it is polled after an error; the delay is ours.
    let mut events = pin!(watcher(api, config));
    // Objects of a (re)list in progress; swapped in whole at InitDone so readers never see a
    // half-listed cache.
    let mut relist: Option<Index> = None;
    let mut failing = Failing::default();
    let mut backoff = Backoff::default();
    while let Some(event) = events.next().await {
        match event {
            // Yielded before the list request is sent: no proof the API server answers.
            Ok(event @ watcher::Event::Init) => {
                shared.observe_watch(WatchActivity::List);
                apply(&shared, &mut relist, event);
            }
            Ok(event) => {
                backoff.reset();
                failing.recovered();
                apply(&shared, &mut relist, event);
            }
            Err(error) => {
                shared.observe_watch(WatchActivity::Failure);
                failing.failed(&error);
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
    // `watcher` streams never end; reaching this is a bug worth shouting about.
    tracing::error!("service-account watch ended; the cache no longer receives updates");
}

fn apply(
    shared: &Shared,
    relist: &mut Option<Index>,
    event: watcher::Event<PartialObjectMeta<ServiceAccount>>,
) {
    match event {
        watcher::Event::Init => *relist = Some(Index::default()),
        watcher::Event::InitApply(object) => {
            if let Some(meta) = meta(shared, object) {
                match relist.as_mut() {
                    Some(fresh) => fresh.apply(meta),
                    None => shared.update(|index| index.apply(meta)),
                }
            }
        }
        watcher::Event::InitDone => {
            if let Some(fresh) = relist.take() {
                shared.update(|index| index.replace(fresh));
            }
            crate::heap::release_free_memory();
            let entries = shared.len.load(Ordering::Relaxed);
            if shared.mark_synced() {
                tracing::info!(service_accounts = entries, "service-account cache synced");
            } else {
                tracing::debug!(service_accounts = entries, "service-account cache relisted");
            }
        }
        watcher::Event::Apply(object) => {
            if let Some(meta) = meta(shared, object) {
                shared.update(|index| index.apply(meta));
            }
        }
        watcher::Event::Delete(object) => {
            if let Some(meta) = meta(shared, object) {
                shared.update(|index| index.delete(&meta.namespace, &meta.name));
            }
        }
    }
}

/// Keeps what lookups need; an object without a namespace or name cannot be looked up, so it is skipped.
fn meta(shared: &Shared, object: PartialObjectMeta<ServiceAccount>) -> Option<ServiceAccountMeta> {
    let metadata = object.metadata;
    if metadata.namespace.as_deref().is_none_or(str::is_empty)
        || metadata.name.as_deref().is_none_or(str::is_empty)
    {
        return None;
    }
    Some(shared.trim(service_account_meta("", "", metadata)))
}

/// Log throttling for watch failures: one warning when failures start, then one per [`WARN_EVERY`],
/// and one line when the watch works again.
#[derive(Default)]
struct Failing {
    since_warning: u64,
    last_warning: Option<Instant>,
}

impl Failing {
    fn failed(&mut self, error: &watcher::Error) {
        self.since_warning += 1;
        let due = self
            .last_warning
            .is_none_or(|last| last.elapsed() >= WARN_EVERY);
        if due {
            tracing::warn!(
                error = %error,
                failures = self.since_warning,
                "service-account watch failing; serving cached entries, retrying with backoff"
            );
            self.last_warning = Some(Instant::now());
            self.since_warning = 0;
        } else {
            tracing::debug!(error = %error, "service-account watch still failing");
        }
    }

    fn recovered(&mut self) {
        if self.last_warning.take().is_some() {
            tracing::info!("service-account watch recovered");
            self.since_warning = 0;
        }
    }
}
