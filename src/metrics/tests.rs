use std::collections::BTreeSet;
use std::time::Duration;

use super::families::*;
use super::*;

/// The value of the series whose line starts with `series ` (name and labels exactly as rendered).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

fn metrics() -> Metrics {
    Metrics::new().unwrap()
}

#[test]
fn every_contract_family_is_exposed_with_its_type() {
    let text = metrics().render();
    for (name, kind) in [
        (MUTATION_REQUEST, "histogram"),
        (ADMISSION_REQUESTS, "counter"),
        (SA_LOOKUPS, "counter"),
        (SA_CACHE_OBJECTS, "gauge"),
        (SA_WATCH_LISTS, "counter"),
        (SA_WATCH_FAILURES, "counter"),
        (RBAC_CHECKS, "counter"),
        (RBAC_DURATION, "histogram"),
        (TLS_EXPIRY, "gauge"),
        (BUILD_INFO, "gauge"),
    ] {
        // The namespace histogram has no series until a request is recorded.
        if name == MUTATION_REQUEST {
            continue;
        }
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}:\n{text}"
        );
    }
    let m = metrics();
    m.record_admission(Outcome::Ignored, "default", Duration::ZERO);
    assert!(m
        .render()
        .contains("# TYPE azwi_mutation_request histogram\n"));
}

#[test]
fn names_are_the_contract() {
    assert_eq!(
        [
            MUTATION_REQUEST,
            ADMISSION_REQUESTS,
            SA_LOOKUPS,
            SA_CACHE_OBJECTS,
            SA_WATCH_LISTS,
            SA_WATCH_FAILURES,
            RBAC_CHECKS,
            RBAC_DURATION,
            TLS_EXPIRY,
            BUILD_INFO
        ],
        [
            "azwi_mutation_request",
            "azwi_admission_requests_total",
            "azwi_service_account_lookups_total",
            "azwi_service_account_cache_objects",
            "azwi_service_account_watch_lists_total",
            "azwi_service_account_watch_failures_total",
            "azwi_rbac_checks_total",
            "azwi_rbac_check_duration_seconds",
            "azwi_tls_certificate_expiry_timestamp_seconds",
            "azwi_build_info",
        ]
    );
}

#[test]
fn every_outcome_series_exists_at_zero_from_the_start() {
    let text = metrics().render();
    let expected = [
        ("mutated", "none"),
        ("unchanged", "none"),
        ("ignored", "none"),
        ("denied", "invalid_pod"),
        ("denied", "service_account_not_found"),
        ("denied", "service_account_unavailable"),
        ("denied", "missing_client_id"),
        ("denied", "rbac_denied"),
        ("denied", "rbac_unavailable"),
        ("denied", "handler_panicked"),
        ("malformed", "malformed_review"),
        ("malformed", "body_too_large"),
        ("malformed", "body_timeout"),
        ("shed", "too_many_in_flight"),
    ];
    for (outcome, reason) in expected {
        let series =
            format!(r#"azwi_admission_requests_total{{outcome="{outcome}",reason="{reason}"}}"#);
        assert_eq!(value(&text, &series), Some(0.0), "{series}");
    }
    let lines = text
        .lines()
        .filter(|l| l.starts_with("azwi_admission_requests_total{"));
    assert_eq!(lines.count(), expected.len());
}

#[test]
fn outcome_all_has_distinct_label_pairs() {
    let pairs: BTreeSet<_> = Outcome::ALL
        .iter()
        .map(|o| (o.as_str(), o.reason()))
        .collect();
    assert_eq!(pairs.len(), Outcome::ALL.len());
}

#[test]
fn records_admissions_by_outcome_and_namespace() {
    let m = metrics();
    m.record_admission(Outcome::Mutated, "apps", Duration::from_micros(200));
    m.record_admission(Outcome::Mutated, "apps", Duration::from_millis(2));
    m.record_admission(Outcome::Malformed, "", Duration::from_micros(50));
    let text = m.render();
    let count = |s: &str| value(&text, s);
    assert_eq!(
        count(r#"azwi_admission_requests_total{outcome="mutated",reason="none"}"#),
        Some(2.0)
    );
    assert_eq!(
        count(r#"azwi_admission_requests_total{outcome="malformed",reason="malformed_review"}"#),
        Some(1.0)
    );
    assert_eq!(
        count(r#"azwi_mutation_request_count{namespace="apps"}"#),
        Some(2.0)
    );
    assert_eq!(
        count(r#"azwi_mutation_request_bucket{namespace="apps",le="0.00025"}"#),
        Some(1.0)
    );
    assert_eq!(
        count(r#"azwi_mutation_request_bucket{namespace="apps",le="0.002"}"#),
        Some(2.0)
    );
    assert_eq!(
        count(r#"azwi_mutation_request_sum{namespace="apps"}"#),
        Some(0.0022)
    );
    assert_eq!(
        count(r#"azwi_mutation_request_count{namespace=""}"#),
        Some(1.0)
    );
}

#[test]
fn mutation_buckets_are_upstreams_plus_sub_millisecond() {
    let m = metrics();
    m.record_admission(Outcome::Unchanged, "a", Duration::ZERO);
    let text = m.render();
    let bounds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix(r#"azwi_mutation_request_bucket{namespace="a",le=""#))
        .filter_map(|l| l.split('"').next())
        .collect();
    let mut expected = vec!["0.0001", "0.00025", "0.0005"];
    let upstream = [
        "0.001", "0.002", "0.003", "0.004", "0.005", "0.006", "0.007", "0.008", "0.009", "0.01",
        "0.02", "0.03", "0.04", "0.05", "0.06", "0.07", "0.08", "0.09", "0.1", "0.2", "0.3", "0.4",
        "0.5", "0.6", "0.7", "0.8", "0.9", "1", "1.5", "2", "2.5", "3", "+Inf",
    ];
    expected.extend(upstream);
    assert_eq!(bounds, expected);
}

#[test]
fn namespaces_beyond_the_limit_share_the_other_series() {
    let m = Metrics::with_namespace_limit(2).unwrap();
    for ns in ["a", "b", "c", "d", "a", "c"] {
        m.record_admission(Outcome::Mutated, ns, Duration::from_micros(1));
    }
    let text = m.render();
    let count = |ns: &str| {
        value(
            &text,
            &format!(r#"azwi_mutation_request_count{{namespace="{ns}"}}"#),
        )
    };
    assert_eq!(count("a"), Some(2.0));
    assert_eq!(count("b"), Some(1.0));
    assert_eq!(count(OVERFLOW_NAMESPACE), Some(3.0));
    assert_eq!(count("c"), None);
    assert_eq!(count("d"), None);
    assert_eq!(m.inner.mutation_request.tracked(), 2);
}

#[test]
fn other_series_is_absent_until_the_limit_is_reached() {
    let m = Metrics::with_namespace_limit(1).unwrap();
    m.record_admission(Outcome::Mutated, "a", Duration::ZERO);
    assert!(!m.render().contains("_other"));
}

#[test]
fn lookup_series_are_labelled_by_source_and_result() {
    let m = metrics();
    m.record_service_account_lookup(LookupSource::Cache, LookupResult::Miss);
    m.record_service_account_lookup(LookupSource::Api, LookupResult::NotFound);
    m.record_service_account_lookup(LookupSource::Cache, LookupResult::Hit);
    m.record_service_account_lookup(LookupSource::Cache, LookupResult::Hit);
    m.set_service_account_cache_objects(17);
    let text = m.render();
    let series = |s: &str, r: &str| {
        value(
            &text,
            &format!(r#"azwi_service_account_lookups_total{{result="{r}",source="{s}"}}"#),
        )
    };
    assert_eq!(series("cache", "hit"), Some(2.0));
    assert_eq!(series("cache", "miss"), Some(1.0));
    assert_eq!(series("api", "not_found"), Some(1.0));
    assert_eq!(series("api", "error"), Some(0.0));
    assert_eq!(
        value(&text, "azwi_service_account_cache_objects"),
        Some(17.0)
    );
}

#[test]
fn rbac_series_are_labelled_by_result_and_cached() {
    let m = metrics();
    m.record_rbac_check(RbacResult::Allowed, false);
    m.record_rbac_check(RbacResult::Allowed, true);
    m.record_rbac_check(RbacResult::Allowed, true);
    m.record_rbac_check(RbacResult::Error, false);
    m.observe_rbac_check_duration(Duration::from_millis(3));
    let text = m.render();
    let series = |r: &str, c: &str| {
        value(
            &text,
            &format!(r#"azwi_rbac_checks_total{{cached="{c}",result="{r}"}}"#),
        )
    };
    assert_eq!(series("allowed", "true"), Some(2.0));
    assert_eq!(series("allowed", "false"), Some(1.0));
    assert_eq!(series("error", "false"), Some(1.0));
    assert_eq!(series("denied", "true"), Some(0.0));
    assert_eq!(
        value(&text, "azwi_rbac_check_duration_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"azwi_rbac_check_duration_seconds_bucket{le="0.005"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            r#"azwi_rbac_check_duration_seconds_bucket{le="0.0025"}"#
        ),
        Some(0.0)
    );
}

#[test]
fn build_info_and_certificate_expiry() {
    let m = metrics();
    m.set_tls_certificate_expiry(1_800_000_000);
    let text = m.render();
    let build = format!(
        r#"azwi_build_info{{build_date="{}",commit="{}",version="{}"}}"#,
        crate::build_info::build_date(),
        crate::build_info::GIT_COMMIT,
        crate::build_info::VERSION
    );
    assert_eq!(value(&text, &build), Some(1.0));
    assert_eq!(value(&text, TLS_EXPIRY), Some(1.8e9));
}

#[cfg(target_os = "linux")]
#[test]
fn process_metrics_are_included() {
    let text = metrics().render();
    assert!(
        value(&text, "process_resident_memory_bytes").is_some_and(|v| v > 0.0),
        "{text}"
    );
    assert!(text.contains("process_open_fds "));
}

#[test]
fn clones_share_one_registry() {
    let m = metrics();
    m.clone().record_rbac_check(RbacResult::Denied, false);
    let text = m.render();
    assert_eq!(
        value(
            &text,
            r#"azwi_rbac_checks_total{cached="false",result="denied"}"#
        ),
        Some(1.0)
    );
}

#[test]
fn instances_are_independent() {
    let (a, b) = (metrics(), metrics());
    a.record_admission(Outcome::Ignored, "x", Duration::ZERO);
    let series = r#"azwi_admission_requests_total{outcome="ignored",reason="none"}"#;
    assert_eq!(value(&a.render(), series), Some(1.0));
    assert_eq!(value(&b.render(), series), Some(0.0));
}

#[test]
fn enum_discriminants_index_their_all_arrays() {
    // The handle arrays are indexed by `as usize`; this keeps ALL in declaration order.
    assert!(LookupSource::ALL
        .iter()
        .enumerate()
        .all(|(i, s)| *s as usize == i));
    assert!(LookupResult::ALL
        .iter()
        .enumerate()
        .all(|(i, r)| *r as usize == i));
    assert!(RbacResult::ALL
        .iter()
        .enumerate()
        .all(|(i, r)| *r as usize == i));
}
