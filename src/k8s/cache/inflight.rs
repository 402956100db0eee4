//! Coalescing of concurrent cache misses: a burst of pods naming the same not-yet-cached service
//! account (a Deployment scaled up right after its service account was created) makes one API
//! request, and every caller gets its answer.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OnceCell;

use crate::k8s::service_accounts::LookupError;

use crate::mutate::service_account::ServiceAccountMeta;

pub(crate) type Outcome = Result<Arc<ServiceAccountMeta>, LookupError>;

type Key = (String, String);

/// The lookups currently waiting on the API server, by namespace and name.
#[derive(Default)]
pub(crate) struct Inflight {
    calls: Mutex<HashMap<Key, Arc<OnceCell<Outcome>>>>,
}

impl Inflight {
    /// Runs `fetch` unless a lookup of the same key is already running, in which case this waits for
    /// that one. If the caller running `fetch` is cancelled (its admission deadline passed), one of
    /// the waiters takes over with its own `fetch`, so nobody waits on a lookup no one is driving.
    pub(crate) async fn run<F, Fut>(&self, namespace: &str, name: &str, fetch: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let registration = self.join(namespace, name);
        let outcome = registration.cell.get_or_init(fetch).await;
        clone_outcome(outcome)
    }

    fn join(&self, namespace: &str, name: &str) -> Registration<'_> {
        let key = (namespace.to_owned(), name.to_owned());
        let mut calls = self.lock();
        // A finished cell still in the map holds an old answer: never hand that out, start afresh.
        let cell = match calls.get(&key) {
            Some(cell) if !cell.initialized() => cell.clone(),
            _ => {
                let cell = Arc::new(OnceCell::new());
                calls.insert(key.clone(), cell.clone());
                cell
            }
        };
        Registration {
            inflight: self,
            key,
            cell,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Arc<OnceCell<Outcome>>>> {
        // The map stays consistent even if a holder panicked: every update is a single insert/remove.
        self.calls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    fn pending(&self) -> usize {
        self.lock().len()
    }
}

/// One caller's share of a lookup; removes the map entry when the lookup is over (answered, or
/// abandoned by every caller), also on cancellation, so the map never keeps stale entries.
struct Registration<'a> {
    inflight: &'a Inflight,
    key: Key,
    cell: Arc<OnceCell<Outcome>>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut calls = self.inflight.lock();
        let Some(current) = calls.get(&self.key) else {
            return;
        };
        // Clones are made under this lock, so the count is exact: 2 = the map's and ours.
        let abandoned = Arc::strong_count(&self.cell) <= 2;
        if Arc::ptr_eq(current, &self.cell) && (self.cell.initialized() || abandoned) {
            calls.remove(&self.key);
        }
    }
}

fn clone_outcome(outcome: &Outcome) -> Outcome {
    match outcome {
        Ok(meta) => Ok(meta.clone()),
        Err(LookupError::NotFound { namespace, name }) => Err(LookupError::NotFound {
            namespace: namespace.clone(),
            name: name.clone(),
        }),
        Err(LookupError::Unavailable {
            namespace,
            name,
            reason,
        }) => Err(LookupError::Unavailable {
            namespace: namespace.clone(),
            name: name.clone(),
            reason: reason.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn found(name: &str) -> Outcome {
        Ok(Arc::new(ServiceAccountMeta {
            namespace: "ns".to_owned(),
            name: name.to_owned(),
            ..ServiceAccountMeta::default()
        }))
    }

    #[tokio::test]
    async fn concurrent_lookups_of_one_key_fetch_once() {
        let inflight = Inflight::default();
        let fetches = AtomicUsize::new(0);
        let (release, released) = tokio::sync::watch::channel(false);
        let lookup = || {
            inflight.run("ns", "sa", || async {
                fetches.fetch_add(1, Ordering::SeqCst);
                let mut released = released.clone();
                let _ = released.wait_for(|r| *r).await;
                found("sa")
            })
        };
        let all = futures::future::join_all((0..8).map(|_| lookup()));
        let releaser = async {
            tokio::task::yield_now().await;
            let _ = release.send(true);
        };
        let (outcomes, ()) = tokio::join!(all, releaser);

        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert!(outcomes.iter().all(|o| o.is_ok()));
        assert_eq!(inflight.pending(), 0);
    }

    #[tokio::test]
    async fn a_later_lookup_does_not_reuse_a_finished_answer() {
        let inflight = Inflight::default();
        let first = inflight.run("ns", "sa", || async { found("first") }).await;
        let second = inflight.run("ns", "sa", || async { found("second") }).await;
        assert_eq!(first.expect("first").name, "first");
        assert_eq!(second.expect("second").name, "second");
        assert_eq!(inflight.pending(), 0);
    }

    #[tokio::test]
    async fn a_cancelled_lookup_leaves_nothing_behind() {
        let inflight = Inflight::default();
        let slow = inflight.run("ns", "sa", || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            found("never")
        });
        assert!(tokio::time::timeout(Duration::from_millis(10), slow)
            .await
            .is_err());
        assert_eq!(inflight.pending(), 0);
        let next = inflight.run("ns", "sa", || async { found("next") }).await;
        assert_eq!(next.expect("next").name, "next");
    }

    #[test]
    fn errors_are_cloned_faithfully() {
        let unavailable = LookupError::Unavailable {
            namespace: "ns".into(),
            name: "sa".into(),
            reason: "down".into(),
        };
        let not_found = LookupError::NotFound {
            namespace: "ns".into(),
            name: "sa".into(),
        };
        for error in [unavailable, not_found] {
            let text = error.to_string();
            let cloned = clone_outcome(&Err(error)).map(|_| ());
            assert_eq!(cloned.map_err(|e| e.to_string()), Err(text));
        }
    }
}
