//! The `namespace` label of `azwi_mutation_request`, with bounded cardinality.
//!
//! Upstream labels its duration histogram with the request's namespace, and dashboards built for upstream
//! group by it, so the label stays. But namespaces are not a closed set: a cluster that creates a namespace
//! per test run or per tenant would grow the series count without bound (each namespace costs 38 series:
//! 35 buckets, `+Inf`, `_sum`, `_count`), and series are never dropped because a namespace was deleted. So
//! only the first `limit` distinct namespaces seen since start get their own series; later ones are all
//! recorded under `namespace="_other"`, which cannot collide with a real namespace (Kubernetes namespace
//! names are DNS labels: no `_`). A restart starts counting afresh.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use prometheus::{Histogram, HistogramVec};

/// Distinct namespaces tracked by default: at most 500 × 38 = 19,000 series, a few MB in Prometheus, and far
/// more namespaces than most clusters run workload-identity pods in.
pub const DEFAULT_NAMESPACE_LIMIT: usize = 500;

/// The `namespace` label value for requests from namespaces beyond the limit.
pub const OVERFLOW_NAMESPACE: &str = "_other";

pub(super) struct NamespaceHistogram {
    vec: HistogramVec,
    limit: usize,
    /// Handles for the namespaces that have their own series, so the hot path is one read-locked hash
    /// lookup (the same cost as `HistogramVec::with_label_values`, without building a label hash).
    tracked: RwLock<HashMap<Box<str>, Histogram>>,
    /// Created on first overflow, so `_other` only appears once the limit has actually been reached.
    overflow: OnceLock<Histogram>,
}

impl NamespaceHistogram {
    pub fn new(vec: HistogramVec, limit: usize) -> Result<Self, prometheus::Error> {
        // Resolve the overflow label once here so that a bad label set fails at startup, not mid-request.
        vec.get_metric_with_label_values(&[OVERFLOW_NAMESPACE])?;
        vec.remove_label_values(&[OVERFLOW_NAMESPACE])?;
        Ok(NamespaceHistogram {
            vec,
            limit,
            tracked: RwLock::new(HashMap::new()),
            overflow: OnceLock::new(),
        })
    }

    pub fn observe(&self, namespace: &str, seconds: f64) {
        {
            // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
            let tracked = self.tracked.read().unwrap_or_else(|e| e.into_inner());
            if let Some(histogram) = tracked.get(namespace) {
                histogram.observe(seconds);
                return;
            }
        }
        let mut tracked = self.tracked.write().unwrap_or_else(|e| e.into_inner());
        if let Some(histogram) = tracked.get(namespace) {
            // Another request added it between our read and write locks.
            histogram.observe(seconds);
            return;
        }
        if tracked.len() < self.limit {
            if let Ok(histogram) = self.vec.get_metric_with_label_values(&[namespace]) {
                histogram.observe(seconds);
                tracked.insert(namespace.into(), histogram);
                return;
            }
        }
        drop(tracked);
        self.overflow().observe(seconds);
    }

    fn overflow(&self) -> &Histogram {
        self.overflow.get_or_init(|| {
            // Label count was checked in `new`, so this is the same call that succeeded there.
            self.vec.with_label_values(&[OVERFLOW_NAMESPACE])
        })
    }

    /// How many namespaces have their own series (for tests and debugging).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.tracked.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}
