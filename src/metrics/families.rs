//! The metric families, their names, help texts and buckets, and the pre-resolved per-label handles.

use prometheus::core::Collector;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use super::Outcome;

use super::namespaces::NamespaceHistogram;
use super::{LookupResult, LookupSource, MetricsError, RbacResult};

pub(super) const MUTATION_REQUEST: &str = "azwi_mutation_request";
pub(super) const ADMISSION_REQUESTS: &str = "azwi_admission_requests_total";
pub(super) const SA_LOOKUPS: &str = "azwi_service_account_lookups_total";
pub(super) const SA_CACHE_OBJECTS: &str = "azwi_service_account_cache_objects";
pub(super) const SA_WATCH_LISTS: &str = "azwi_service_account_watch_lists_total";
pub(super) const SA_WATCH_FAILURES: &str = "azwi_service_account_watch_failures_total";
pub(super) const RBAC_CHECKS: &str = "azwi_rbac_checks_total";
pub(super) const RBAC_DURATION: &str = "azwi_rbac_check_duration_seconds";
pub(super) const TLS_EXPIRY: &str = "azwi_tls_certificate_expiry_timestamp_seconds";
pub(super) const BUILD_INFO: &str = "azwi_build_info";

/// Label values of `azwi_build_info`.
pub(super) struct BuildLabels {
    pub version: &'static str,
    pub commit: &'static str,
    pub build_date: String,
}

impl BuildLabels {
    pub fn of_this_build() -> Self {
        BuildLabels {
            version: crate::build_info::VERSION,
            commit: crate::build_info::GIT_COMMIT,
            build_date: crate::build_info::build_date(),
        }
    }
}

/// Upstream's buckets (1 ms to 3 s) with three more below 1 ms: this webhook answers most reviews in well
/// under a millisecond, which upstream's first bucket would lump together.
pub(super) const MUTATION_BUCKETS: [f64; 35] = [
    0.0001, 0.00025, 0.0005, //
    0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, //
    0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, //
    0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, //
    1.0, 1.5, 2.0, 2.5, 3.0,
];

/// A SubjectAccessReview is one API-server round trip: from sub-millisecond (local) to the admission budget.
pub(super) const RBAC_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub(super) struct Families {
    pub registry: Registry,
    /// Kept for outcomes missing from `Outcome::ALL` (see `Metrics::record_admission`).
    pub admissions_vec: IntCounterVec,
    /// Indexed like `Outcome::ALL`.
    pub admissions: [IntCounter; Outcome::ALL.len()],
    pub mutation_request: NamespaceHistogram,
    /// Indexed `[LookupSource as usize][LookupResult as usize]`.
    pub sa_lookups: [[IntCounter; LookupResult::ALL.len()]; LookupSource::ALL.len()],
    pub sa_cache_objects: IntGauge,
    pub sa_watch_lists: IntCounter,
    pub sa_watch_failures: IntCounter,
    /// Indexed `[RbacResult as usize][cached as usize]`.
    pub rbac_checks: [[IntCounter; 2]; RbacResult::ALL.len()],
    pub rbac_duration: Histogram,
    pub tls_expiry: IntGauge,
}

impl Families {
    pub fn new(build: &BuildLabels, namespace_limit: usize) -> Result<Self, MetricsError> {
        let registry = Registry::new();

        let admissions_vec = register(
            &registry,
            ADMISSION_REQUESTS,
            IntCounterVec::new(
                Opts::new(
                    ADMISSION_REQUESTS,
                    "Admission requests handled, by outcome and reason.",
                ),
                &["outcome", "reason"],
            ),
        )?;
        let admissions = handles(
            ADMISSION_REQUESTS,
            Outcome::ALL
                .map(|o| admissions_vec.get_metric_with_label_values(&[o.as_str(), o.reason()])),
        )?;

        let mutation_request = NamespaceHistogram::new(
            register(
                &registry,
                MUTATION_REQUEST,
                HistogramVec::new(
                    HistogramOpts::new(
                        MUTATION_REQUEST,
                        "Distribution of how long it took for the azure-workload-identity mutation request",
                    )
                    .buckets(MUTATION_BUCKETS.to_vec()),
                    &["namespace"],
                ),
            )?,
            namespace_limit,
        )
        .map_err(|source| MetricsError { name: MUTATION_REQUEST, source })?;

        let lookups_vec = register(
            &registry,
            SA_LOOKUPS,
            IntCounterVec::new(
                Opts::new(
                    SA_LOOKUPS,
                    "Service-account lookups, by source (watch cache or API server) and result.",
                ),
                &["source", "result"],
            ),
        )?;
        let sa_lookups = handles(
            SA_LOOKUPS,
            LookupSource::ALL.map(|s| {
                handles(
                    SA_LOOKUPS,
                    LookupResult::ALL.map(|r| {
                        lookups_vec.get_metric_with_label_values(&[s.as_str(), r.as_str()])
                    }),
                )
                .map_err(|e| e.source)
            }),
        )?;

        let sa_cache_objects = register(
            &registry,
            SA_CACHE_OBJECTS,
            IntGauge::new(
                SA_CACHE_OBJECTS,
                "Service accounts held in the metadata-only watch cache.",
            ),
        )?;

        let sa_watch_lists = register(
            &registry,
            SA_WATCH_LISTS,
            IntCounter::new(
                SA_WATCH_LISTS,
                "Service-account (re)lists started by the watch: the first, then one per watch that cannot resume.",
            ),
        )?;
        let sa_watch_failures = register(
            &registry,
            SA_WATCH_FAILURES,
            IntCounter::new(
                SA_WATCH_FAILURES,
                "Failed service-account list or watch requests (each followed by a backoff of 0.8 s doubling to 30 s).",
            ),
        )?;

        let rbac_vec = register(
            &registry,
            RBAC_CHECKS,
            IntCounterVec::new(
                Opts::new(
                    RBAC_CHECKS,
                    "Identity-binding RBAC checks, by result and whether the answer was cached.",
                ),
                &["result", "cached"],
            ),
        )?;
        let rbac_checks = handles(
            RBAC_CHECKS,
            RbacResult::ALL.map(|r| {
                handles(
                    RBAC_CHECKS,
                    ["false", "true"]
                        .map(|c| rbac_vec.get_metric_with_label_values(&[r.as_str(), c])),
                )
                .map_err(|e| e.source)
            }),
        )?;

        let rbac_duration = register(
            &registry,
            RBAC_DURATION,
            Histogram::with_opts(
                HistogramOpts::new(
                    RBAC_DURATION,
                    "Duration of SubjectAccessReview calls made for identity-binding RBAC checks.",
                )
                .buckets(RBAC_BUCKETS.to_vec()),
            ),
        )?;

        let tls_expiry = register(
            &registry,
            TLS_EXPIRY,
            IntGauge::new(
                TLS_EXPIRY,
                "notAfter of the serving certificate currently in use, in seconds since the Unix epoch.",
            ),
        )?;

        let build_info = register(
            &registry,
            BUILD_INFO,
            IntGaugeVec::new(
                Opts::new(
                    BUILD_INFO,
                    "Always 1; the labels say which build is running.",
                ),
                &["version", "commit", "build_date"],
            ),
        )?;
        build_info
            .get_metric_with_label_values(&[build.version, build.commit, &build.build_date])
            .map_err(|source| MetricsError {
                name: BUILD_INFO,
                source,
            })?
            .set(1);

        // CPU, memory, open file descriptors and start time of this process, under the standard names.
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .map_err(|source| MetricsError {
                name: "process",
                source,
            })?;

        Ok(Families {
            registry,
            admissions_vec,
            admissions,
            mutation_request,
            sa_lookups,
            sa_cache_objects,
            sa_watch_lists,
            sa_watch_failures,
            rbac_checks,
            rbac_duration,
            tls_expiry,
        })
    }
}

/// Registers a freshly created collector, returning it (a handle sharing the registered state).
fn register<C: Collector + Clone + 'static>(
    registry: &Registry,
    name: &'static str,
    collector: Result<C, prometheus::Error>,
) -> Result<C, MetricsError> {
    let collector = collector.map_err(|source| MetricsError { name, source })?;
    registry
        .register(Box::new(collector.clone()))
        .map_err(|source| MetricsError { name, source })?;
    Ok(collector)
}

/// Turns an array of label-resolution results into an array of handles, or the first error.
fn handles<T, const N: usize>(
    name: &'static str,
    results: [Result<T, prometheus::Error>; N],
) -> Result<[T; N], MetricsError> {
    let resolved = results
        .into_iter()
        .collect::<Result<Vec<T>, _>>()
        .map_err(|source| MetricsError { name, source })?;
    // `resolved` has exactly N elements; the error arm only satisfies the type checker.
    resolved.try_into().map_err(|_| MetricsError {
        name,
        source: prometheus::Error::Msg("label handle count mismatch".into()),
    })
}
