//! A TTL cache with single-flight in front of an [`Authorizer`].
//!
//! - Allowed and denied answers are kept for different times: an allowed answer for long (a burst of
//!   pods for one service account makes one call), a denied one briefly, so that a ClusterRoleBinding
//!   created after a rejected pod takes effect within seconds. The price of the long allowed TTL is
//!   that a revoked grant is still honoured for new pods until its entry expires.
//! - Errors are never cached: the next pod asks again.
//! - Concurrent checks of one key share one call. The call runs in its own task with its own time
//!   limit, so a waiter whose deadline passes gets a timeout without cancelling the call for the
//!   others (and the answer still lands in the cache for the next pod).
//! - The cache is bounded: when full, expired entries go first, then the oldest tenth.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::{millis, AccessDecision, Authorizer, AuthzError};

/// Cache and call limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    pub allowed_ttl: Duration,
    pub denied_ttl: Duration,
    /// Most entries kept; 0 disables caching (single-flight still applies).
    pub max_entries: usize,
    /// Limit on one shared call, independent of any one waiter's deadline.
    pub call_timeout: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            allowed_ttl: Duration::from_secs(300),
            denied_ttl: Duration::from_secs(10),
            max_entries: 10_000,
            call_timeout: Duration::from_secs(5),
        }
    }
}

/// How one check was answered, for metrics and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub client_id: String,
    pub result: Result<AccessDecision, AuthzError>,
    /// Answered from the cache, without waiting on the API server.
    pub cached: bool,
    /// Joined a call another check had already started.
    pub coalesced: bool,
    /// Time this check took, including any wait.
    pub duration: Duration,
}

impl CheckReport {
    /// An answer obtained without the API server (from RBAC objects read offline).
    pub fn offline(client_id: &str, decision: AccessDecision) -> Self {
        CheckReport {
            client_id: client_id.to_owned(),
            result: Ok(decision),
            cached: false,
            coalesced: false,
            duration: Duration::ZERO,
        }
    }

    /// `allowed`, `denied` or `error`: the `result` label of `azwi_rbac_checks_total`.
    pub fn result_label(&self) -> &'static str {
        match &self.result {
            Ok(decision) if decision.allowed => "allowed",
            Ok(_) => "denied",
            Err(_) => "error",
        }
    }
}

type Key = (String, String, String);
type Answer = Option<Result<AccessDecision, AuthzError>>;

struct Entry {
    decision: AccessDecision,
    inserted: Instant,
    expires: Instant,
}

struct InFlight {
    generation: u64,
    answer: watch::Receiver<Answer>,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    in_flight: HashMap<Key, InFlight>,
    next_generation: u64,
}

/// An [`Authorizer`] behind a TTL cache and single-flight. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct CachedAuthorizer {
    inner: Arc<dyn Authorizer>,
    config: CacheConfig,
    state: Arc<Mutex<State>>,
}

/// What the lock found for a key.
enum Lookup {
    Hit(AccessDecision),
    Wait {
        answer: watch::Receiver<Answer>,
        coalesced: bool,
    },
}

impl CachedAuthorizer {
    pub fn new(inner: Arc<dyn Authorizer>, config: CacheConfig) -> Self {
        Self {
            inner,
            config,
            state: Arc::default(),
        }
    }

    /// Answers from the cache, or joins or starts the call for this key and waits until `deadline`.
    pub async fn check(
        &self,
        namespace: &str,
        service_account: &str,
        client_id: &str,
        deadline: Instant,
    ) -> CheckReport {
        let started = Instant::now();
        let key = (
            namespace.to_owned(),
            service_account.to_owned(),
            client_id.to_owned(),
        );
        let report = |result, cached, coalesced| CheckReport {
            client_id: client_id.to_owned(),
            result,
            cached,
            coalesced,
            duration: started.elapsed(),
        };
        let (mut answer, coalesced) = match self.lookup(key, started) {
            Lookup::Hit(decision) => return report(Ok(decision), true, false),
            Lookup::Wait { answer, coalesced } => (answer, coalesced),
        };
        let result = match tokio::time::timeout_at(deadline, answer.wait_for(Option::is_some)).await
        {
            Ok(Ok(answered)) => answered.clone().unwrap_or_else(|| Err(abandoned())),
            // The call's task ended without answering (it panicked, or the runtime is stopping).
            Ok(Err(_)) => Err(abandoned()),
            Err(_) => Err(AuthzError::Timeout {
                waited_ms: millis(started.elapsed()),
            }),
        };
        report(result, false, coalesced)
    }

    /// Entries currently held (expired ones included until they are evicted or looked up).
    pub fn len(&self) -> usize {
        lock(&self.state).entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lookup(&self, key: Key, now: Instant) -> Lookup {
        let mut state = lock(&self.state);
        match state.entries.get(&key) {
            Some(entry) if entry.expires > now => return Lookup::Hit(entry.decision.clone()),
            Some(_) => {
                state.entries.remove(&key);
            }
            None => {}
        }
        if let Some(flight) = state.in_flight.get(&key) {
            return Lookup::Wait {
                answer: flight.answer.clone(),
                coalesced: true,
            };
        }
        let (sender, answer) = watch::channel(None);
        let generation = state.next_generation;
        state.next_generation += 1;
        state.in_flight.insert(
            key.clone(),
            InFlight {
                generation,
                answer: answer.clone(),
            },
        );
        drop(state);
        self.spawn_call(key, generation, sender);
        Lookup::Wait {
            answer,
            coalesced: false,
        }
    }

    fn spawn_call(&self, key: Key, generation: u64, sender: watch::Sender<Answer>) {
        let this = self.clone();
        tokio::spawn(async move {
            // Clears the in-flight entry even if the call panics, so the key is never stuck.
            let guard = FlightGuard {
                state: &this.state,
                key: &key,
                generation,
            };
            let deadline = Instant::now() + this.config.call_timeout;
            let call = this.inner.check(&key.0, &key.1, &key.2, deadline);
            let result = match tokio::time::timeout_at(deadline, call).await {
                Ok(result) => result,
                Err(_) => Err(AuthzError::Timeout {
                    waited_ms: millis(this.config.call_timeout),
                }),
            };
            {
                // Store and retire the flight under one lock: a check arriving now either finds
                // the entry or, after an error, starts a fresh call; never a gap with neither.
                let mut state = lock(&this.state);
                if let Ok(decision) = &result {
                    this.store(&mut state, key.clone(), decision.clone());
                }
                guard.retire(&mut state);
            }
            let _ = sender.send(Some(result));
        });
    }

    fn store(&self, state: &mut State, key: Key, decision: AccessDecision) {
        if self.config.max_entries == 0 {
            return;
        }
        let now = Instant::now();
        if state.entries.len() >= self.config.max_entries && !state.entries.contains_key(&key) {
            evict(&mut state.entries, self.config.max_entries, now);
        }
        let ttl = if decision.allowed {
            self.config.allowed_ttl
        } else {
            self.config.denied_ttl
        };
        state.entries.insert(
            key,
            Entry {
                decision,
                inserted: now,
                expires: now + ttl,
            },
        );
    }
}

/// Makes room for one entry: drops expired entries, then, if still full, the oldest tenth (at
/// least one), so that a full cache pays for the sort once every `max / 10` inserts.
fn evict(entries: &mut HashMap<Key, Entry>, max: usize, now: Instant) {
    entries.retain(|_, entry| entry.expires > now);
    if entries.len() < max {
        return;
    }
    let mut ages: Vec<(Instant, Key)> = entries
        .iter()
        .map(|(key, entry)| (entry.inserted, key.clone()))
        .collect();
    ages.sort_unstable_by_key(|(inserted, _)| *inserted);
    let excess = entries.len() + 1 - max;
    let count = excess.max(max / 10).min(ages.len());
    for (_, key) in ages.into_iter().take(count) {
        entries.remove(&key);
    }
}

struct FlightGuard<'a> {
    state: &'a Mutex<State>,
    key: &'a Key,
    generation: u64,
}

impl FlightGuard<'_> {
    /// Removes this call's in-flight entry (and only this call's: a newer one may have replaced it).
    fn retire(&self, state: &mut State) {
        if state
            .in_flight
            .get(self.key)
            .is_some_and(|flight| flight.generation == self.generation)
        {
            state.in_flight.remove(self.key);
        }
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.retire(&mut lock(self.state));
    }
}

fn abandoned() -> AuthzError {
    AuthzError::Unavailable {
        reason: "the SubjectAccessReview call was abandoned before it answered".to_owned(),
    }
}

/// A poisoned lock only means another check panicked mid-update; the maps are still consistent
/// enough to use (worst case a missing entry), so carry on rather than fail every admission.
fn lock(mutex: &Mutex<State>) -> MutexGuard<'_, State> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
