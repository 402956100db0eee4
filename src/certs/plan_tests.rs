//! Rotation steps, driven through time with tiny lifetimes.

use super::*;

const A: &str = "svc.ns.svc";
const B: &str = "svc.ns.svc.cluster.local";

fn names() -> Vec<String> {
    vec![A.to_owned(), B.to_owned()]
}

fn provider() -> Arc<CryptoProvider> {
    crate::tls::provider()
}

/// CA 100 s (new CA when < 40 s left), leaf 30 s, overlap 10 s, no backdate.
fn policy() -> Policy {
    Policy {
        ca_validity: Duration::from_secs(100),
        leaf_validity: Duration::from_secs(30),
        ca_renew_before: Duration::from_secs(40),
        leaf_renew_min: Duration::ZERO,
        ca_overlap: Duration::from_secs(10),
        backdate: Duration::ZERO,
    }
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn at(secs: u64) -> SystemTime {
    t0() + Duration::from_secs(secs)
}

fn step(data: &CertData, secs: u64) -> Plan {
    plan(data, &names(), &policy(), at(secs), &provider()).expect("plan")
}

fn ca_count(data: &CertData) -> usize {
    parse_bundle(&data.ca_crt).len()
}

fn leaf_of(data: &CertData) -> Leaf {
    parse_leaf(data, &provider()).expect("leaf parses")
}

/// Index of the bundle CA that the leaf chains to at `secs`.
fn issuer_index(data: &CertData, secs: u64) -> Option<usize> {
    let leaf = leaf_of(data);
    parse_bundle(&data.ca_crt)
        .iter()
        .position(|ca| chains_to(&leaf, ca, &names(), at(secs), &provider()))
}

#[test]
fn empty_secret_gets_ca_and_leaf_then_is_stable() {
    let first = step(&CertData::default(), 0);
    assert!(first.changed());
    assert_eq!(ca_count(&first.data), 1);
    assert_eq!(issuer_index(&first.data, 0), Some(0));
    assert!(loaded_cert(&first.data, &provider()).is_some());
    let again = step(&first.data, 5);
    assert!(!again.changed(), "{:?}", again.reasons);
    assert_eq!(again.data, first.data);
}

#[test]
fn leaf_renews_with_a_third_of_its_life_left_from_the_same_ca() {
    let data = step(&CertData::default(), 0).data;
    assert!(!step(&data, 19).changed());
    let renewed = step(&data, 21);
    assert_eq!(renewed.reasons, vec!["serving certificate renewal"]);
    assert_ne!(renewed.data.tls_crt, data.tls_crt);
    assert_eq!(renewed.data.ca_crt, data.ca_crt);
    assert_eq!(renewed.data.ca_key, data.ca_key);
}

#[test]
fn leaf_renewal_minimum_applies_to_long_lived_leaves() {
    let mut long = policy();
    long.leaf_renew_min = Duration::from_secs(25);
    let data = plan(&CertData::default(), &names(), &long, at(0), &provider())
        .expect("plan")
        .data;
    let later = plan(&data, &names(), &long, at(6), &provider()).expect("plan");
    assert!(later.changed(), "24 s left < 25 s minimum");
}

#[test]
fn ca_rotation_publishes_both_then_switches_leaf_then_drops_old() {
    let mut data = step(&CertData::default(), 0).data;
    // Keep the leaf fresh until the CA nears expiry (renewals every 20 s, leaf capped by the CA).
    for t in [21, 42] {
        data = step(&data, t).data;
    }
    let old_bundle = data.ca_crt.clone();
    // At 61 s the CA has 39 s left (< 40 s): a second CA is published, the leaf stays.
    let rotated = step(&data, 61);
    assert_eq!(
        rotated.reasons,
        vec!["CA rotation: new CA published beside the old"]
    );
    assert_eq!(ca_count(&rotated.data), 2);
    assert!(rotated.data.ca_crt.starts_with(&old_bundle));
    assert_eq!(rotated.data.tls_crt, data.tls_crt);
    assert_eq!(issuer_index(&rotated.data, 61), Some(0));
    data = rotated.data;
    // Still in the overlap: nothing changes.
    assert!(!step(&data, 66).changed());
    // Overlap over: the leaf moves to the new CA, the old CA stays published.
    let switched = step(&data, 71);
    assert_eq!(
        switched.reasons,
        vec!["serving certificate moved to the new CA"]
    );
    assert_eq!(ca_count(&switched.data), 2);
    assert_eq!(issuer_index(&switched.data, 71), Some(1));
    data = switched.data;
    assert!(!step(&data, 76).changed());
    // One overlap after the switch the old CA is dropped.
    let dropped = step(&data, 82);
    assert_eq!(dropped.reasons, vec!["retired CA dropped"]);
    assert_eq!(ca_count(&dropped.data), 1);
    assert_eq!(issuer_index(&dropped.data, 82), Some(0));
    assert!(!step(&dropped.data, 85).changed());
}

#[test]
fn leaf_never_outlives_its_ca() {
    let mut long_leaf = policy();
    long_leaf.leaf_validity = Duration::from_secs(500);
    let data = plan(
        &CertData::default(),
        &names(),
        &long_leaf,
        at(0),
        &provider(),
    )
    .expect("plan")
    .data;
    let leaf = leaf_of(&data);
    let ca_end = parse_bundle(&data.ca_crt)[0].not_after;
    assert_eq!(leaf.not_after, ca_end);
}

#[test]
fn unusable_contents_are_replaced() {
    let good = step(&CertData::default(), 0).data;
    // Key of another certificate.
    let other = step(&CertData::default(), 0).data;
    let mismatched = CertData {
        tls_key: other.tls_key.clone(),
        ..good.clone()
    };
    let fixed = step(&mismatched, 1);
    assert_eq!(fixed.reasons, vec!["no usable serving certificate"]);
    assert_eq!(fixed.data.ca_crt, good.ca_crt, "the CA is kept");
    assert_eq!(issuer_index(&fixed.data, 1), Some(0));

    // Wrong names: reissued for the configured ones.
    let wrong = plan(
        &CertData::default(),
        &["other.svc".to_owned()],
        &policy(),
        at(0),
        &provider(),
    )
    .expect("plan")
    .data;
    let renamed = step(&wrong, 1);
    assert!(renamed.changed());
    assert_eq!(issuer_index(&renamed.data, 1), Some(0));

    // Garbage everywhere: a fresh start.
    let garbage = CertData {
        ca_crt: "x".into(),
        ca_key: "y".into(),
        tls_crt: "z".into(),
        tls_key: "w".into(),
    };
    let fresh = step(&garbage, 0);
    assert_eq!(ca_count(&fresh.data), 1);
    assert!(loaded_cert(&fresh.data, &provider()).is_some());
}

#[test]
fn provided_certificates_without_ca_key_migrate_with_overlap() {
    // As left by `azwi-webhook certs` + `kubectl create secret tls` plus ca.crt: no ca.key.
    let manual = step(&CertData::default(), 0).data;
    let without_key = CertData {
        ca_key: String::new(),
        ..manual.clone()
    };
    let next = step(&without_key, 1);
    assert_eq!(ca_count(&next.data), 2, "old CA kept, new one added");
    assert_eq!(
        next.data.tls_crt, manual.tls_crt,
        "leaf kept during overlap"
    );
    let switched = step(&next.data, 12);
    assert_eq!(issuer_index(&switched.data, 12), Some(1));
}

#[test]
fn expired_material_is_replaced_at_once() {
    let data = step(&CertData::default(), 0).data;
    let much_later = step(&data, 500);
    assert_eq!(ca_count(&much_later.data), 1);
    assert_eq!(issuer_index(&much_later.data, 500), Some(0));
}

#[test]
fn default_policy_renews_well_before_expiry() {
    let p = Policy::default();
    let data = plan(&CertData::default(), &names(), &p, t0(), &provider())
        .expect("plan")
        .data;
    let day = 24 * 3600;
    let stable = plan(&data, &names(), &p, at(200 * day), &provider()).expect("plan");
    assert!(!stable.changed(), "{:?}", stable.reasons);
    let renew = plan(&data, &names(), &p, at(250 * day), &provider()).expect("plan");
    assert_eq!(renew.reasons, vec!["serving certificate renewal"]);
    assert!(!format!("{data:?}").contains("PRIVATE KEY"));
}

#[test]
fn ca_rotation_pass_renews_a_leaf_due_in_the_overlap_from_the_old_ca() {
    let mut data = step(&CertData::default(), 0).data;
    for t in [21, 42] {
        data = step(&data, t).data; // leaf valid 42..72
    }
    // At 63 a new CA is added; the leaf would expire inside the overlap (before 73). The new CA is not
    // trusted by anyone yet, so the leaf is renewed from the old CA, whose key this pass still holds.
    let rotated = step(&data, 63);
    assert_eq!(ca_count(&rotated.data), 2);
    assert_ne!(rotated.data.tls_crt, data.tls_crt);
    assert_eq!(issuer_index(&rotated.data, 63), Some(0));
    // After the overlap the leaf moves to the new CA as usual.
    let switched = step(&rotated.data, 74);
    assert_eq!(issuer_index(&switched.data, 74), Some(1));
}
