//! Prometheus metrics: one registry owned by [`Metrics`], label values from closed sets, and the plain-HTTP
//! `/metrics` listener.
//!
//! Every labelled series the hot path touches is resolved once, at construction, into a handle held in a small
//! array indexed by enum, so recording is an atomic add with no registry lookup and no allocation. The one
//! exception is the upstream-compatible `azwi_mutation_request{namespace}` histogram, whose label values are
//! not a closed set: see [`namespaces`] for how its cardinality is bounded.
//!
//! Typical use:
//! ```
//! # use std::time::Duration;
//! use azwi_webhook::metrics::Outcome;
//! use azwi_webhook::metrics::{LookupResult, LookupSource, Metrics};
//! let metrics = Metrics::new().expect("metric names are valid");
//! metrics.record_admission(Outcome::Mutated, "default", Duration::from_micros(250));
//! metrics.record_service_account_lookup(LookupSource::Cache, LookupResult::Hit);
//! assert!(metrics.render().contains(r#"azwi_admission_requests_total{outcome="mutated",reason="none"} 1"#));
//! ```

mod families;
mod http;
mod namespaces;
mod outcome;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use prometheus::{Registry, TextEncoder};

pub use http::{router, serve_metrics};
pub use namespaces::{DEFAULT_NAMESPACE_LIMIT, OVERFLOW_NAMESPACE};
pub use outcome::Outcome;
/// The `Content-Type` of [`Metrics::render`]'s output (Prometheus text exposition format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// A metric could not be created or registered. Only happens with an invalid name, label or bucket list, i.e.
/// a programming error, but it is reported as a startup error rather than a panic.
#[derive(Debug, thiserror::Error)]
#[error("registering metric {name}: {source}")]
pub struct MetricsError {
    name: &'static str,
    #[source]
    source: prometheus::Error,
}

/// The cache's own lookup vocabulary is the metric's label set.
pub use crate::k8s::cache::{LookupOutcome as LookupResult, LookupSource, WatchActivity};

/// The answer of one identity-binding RBAC check (`result` label of `azwi_rbac_checks_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RbacResult {
    Allowed,
    Denied,
    /// The SubjectAccessReview could not be made or answered.
    Error,
}

impl RbacResult {
    pub const ALL: [RbacResult; 3] = [RbacResult::Allowed, RbacResult::Denied, RbacResult::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            RbacResult::Allowed => "allowed",
            RbacResult::Denied => "denied",
            RbacResult::Error => "error",
        }
    }
}

/// The webhook's metrics. Cloning is cheap (one `Arc`); every clone records into the same registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<families::Families>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A fresh registry with every family registered, `azwi_build_info{version,commit,build_date} 1`, the
    /// process collector (Linux), and at most [`DEFAULT_NAMESPACE_LIMIT`] namespaces tracked.
    pub fn new() -> Result<Self, MetricsError> {
        Self::with_namespace_limit(DEFAULT_NAMESPACE_LIMIT)
    }

    /// Like [`Metrics::new`], tracking at most `limit` distinct namespaces in `azwi_mutation_request` before
    /// further ones are folded into `namespace="_other"`.
    pub fn with_namespace_limit(limit: usize) -> Result<Self, MetricsError> {
        Ok(Metrics {
            inner: Arc::new(families::Families::new(
                &families::BuildLabels::of_this_build(),
                limit,
            )?),
        })
    }

    /// The registry, for registering further collectors (e.g. from another module) next to ours.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Records one handled admission request: `azwi_admission_requests_total{outcome,reason}` and the
    /// upstream-compatible `azwi_mutation_request{namespace}` duration histogram. Call it for every request,
    /// including denials and malformed bodies (`namespace` empty when unknown), as upstream does.
    pub fn record_admission(&self, outcome: Outcome, namespace: &str, elapsed: Duration) {
        self.count_admission(outcome);
        self.inner
            .mutation_request
            .observe(namespace, elapsed.as_secs_f64());
    }

    /// Counts a review the server answered instead of the handler (shed, body refused, handler
    /// panicked): no duration, no namespace, as neither is known.
    pub fn record_refused(&self, outcome: Outcome) {
        self.count_admission(outcome);
    }

    fn count_admission(&self, outcome: Outcome) {
        let inner = &self.inner;
        match Outcome::ALL.iter().position(|o| *o == outcome) {
            Some(i) => inner.admissions[i].inc(),
            // Only reachable if a variant is added to `Outcome` but not to `Outcome::ALL`: still counted,
            // through the slower labelled lookup.
            None => inner
                .admissions_vec
                .with_label_values(&[outcome.as_str(), outcome.reason()])
                .inc(),
        }
    }

    /// Counts one service-account lookup step (a cache read, or the live GET after a cache miss).
    pub fn record_service_account_lookup(&self, source: LookupSource, result: LookupResult) {
        self.inner.sa_lookups[source as usize][result as usize].inc();
    }

    /// Counts what the service-account watch did: a (re)list started, or a failed request.
    pub fn record_service_account_watch(&self, activity: WatchActivity) {
        match activity {
            WatchActivity::List => self.inner.sa_watch_lists.inc(),
            WatchActivity::Failure => self.inner.sa_watch_failures.inc(),
        }
    }

    /// Sets `azwi_service_account_cache_objects` to the number of service accounts the watch cache holds.
    pub fn set_service_account_cache_objects(&self, count: usize) {
        self.inner
            .sa_cache_objects
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Counts one identity-binding RBAC check; `cached` is true when the answer came from the TTL
    /// cache or from a SubjectAccessReview already in flight for the same subject, false when the
    /// check made an API call of its own.
    pub fn record_rbac_check(&self, result: RbacResult, cached: bool) {
        self.inner.rbac_checks[result as usize][usize::from(cached)].inc();
    }

    /// Observes how long one SubjectAccessReview call to the API server took. Only real API calls are
    /// observed: cache hits take microseconds and would hide the latency that matters.
    pub fn observe_rbac_check_duration(&self, elapsed: Duration) {
        self.inner.rbac_duration.observe(elapsed.as_secs_f64());
    }

    /// Sets `azwi_tls_certificate_expiry_timestamp_seconds` to the serving certificate's `notAfter`, in seconds
    /// since the Unix epoch; call it at startup and after every reload.
    pub fn set_tls_certificate_expiry(&self, not_after_unix_seconds: i64) {
        self.inner.tls_expiry.set(not_after_unix_seconds);
    }

    /// Every series in Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let families = self.inner.registry.gather();
        let mut out = String::with_capacity(8 * 1024);
        // Encoding only fails for an empty family, which `gather` never returns; log rather than panic.
        if let Err(e) = TextEncoder::new().encode_utf8(&families, &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}
