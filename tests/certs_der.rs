//! The certificates the webhook generates are strict DER: clients with strict parsers (Python
//! `cryptography`, the Rust `der` crate) refuse anything else, e.g. a serving certificate encoding
//! BasicConstraints `cA FALSE` (a DEFAULT value) or a KeyUsage bit string with trailing zero bits.

#[path = "support/strict_der.rs"]
mod strict_der;

use std::time::SystemTime;

use azwi_webhook::certs::generate;
use strict_der::strict_pem;

#[test]
fn generated_ca_and_serving_certificate_are_strict_der() {
    let names = vec![
        "svc.ns.svc".to_owned(),
        "svc.ns.svc.cluster.local".to_owned(),
    ];
    let certs = generate(&names, SystemTime::now()).expect("generate");

    let ca = strict_pem(&certs.ca_cert_pem).expect("CA is strict DER");
    assert_eq!(ca.len(), 1);
    assert!(ca[0].is_ca());
    assert_eq!(
        ca[0]
            .basic_constraints
            .as_ref()
            .and_then(|bc| bc.path_len_constraint),
        Some(0)
    );

    let leaf = strict_pem(&certs.cert_pem).expect("serving certificate is strict DER");
    assert_eq!(leaf.len(), 1);
    assert!(!leaf[0].is_ca());
    assert_eq!(leaf[0].dns_names, names);
    assert!(leaf[0].ip_addresses.is_empty());
    assert_eq!(leaf[0].issuer, ca[0].subject);
}

#[test]
fn the_strict_check_refuses_what_rcgen_writes_by_default() {
    // rcgen's own encodings of "not a CA" and of KeyUsage, which the webhook no longer uses: the check
    // above would catch either coming back.
    let key = rcgen::KeyPair::generate().expect("key");
    let mut explicit_no_ca =
        rcgen::CertificateParams::new(vec!["a.svc".to_owned()]).expect("params");
    explicit_no_ca.is_ca = rcgen::IsCa::ExplicitNoCa;
    let cert = explicit_no_ca.self_signed(&key).expect("cert");
    let error = strict_pem(&cert.pem()).expect_err("cA FALSE is an encoded DEFAULT");
    assert!(error.contains("BasicConstraints"), "{error}");

    let mut key_usage = rcgen::CertificateParams::new(vec!["a.svc".to_owned()]).expect("params");
    key_usage.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let cert = key_usage.self_signed(&key).expect("cert");
    let error = strict_pem(&cert.pem()).expect_err("9-bit KeyUsage");
    assert!(error.contains("KeyUsage"), "{error}");
}

#[test]
fn certificates_of_self_managed_rotation_are_strict_der() {
    use azwi_webhook::certs::{plan::plan, CertData, Policy};
    let names = vec!["svc.ns.svc".to_owned()];
    let policy = Policy::default();
    let provider = azwi_webhook::tls::provider();
    let first = plan(
        &CertData::default(),
        &names,
        &policy,
        SystemTime::now(),
        &provider,
    )
    .expect("first plan");
    // A year on: the leaf is renewed and a new CA published beside the old one.
    let later = SystemTime::now() + std::time::Duration::from_secs(9 * 365 * 24 * 3600 + 3600);
    let rotated = plan(&first.data, &names, &policy, later, &provider).expect("rotation plan");
    for data in [&first.data, &rotated.data] {
        let cas = strict_pem(&data.ca_crt).expect("CA bundle is strict DER");
        assert!(cas.iter().all(|ca| ca.is_ca()));
        let leaf = strict_pem(&data.tls_crt).expect("serving certificate is strict DER");
        assert!(!leaf[0].is_ca());
        assert_eq!(leaf[0].dns_names, names);
    }
    assert_eq!(strict_pem(&rotated.data.ca_crt).expect("bundle").len(), 2);
}
