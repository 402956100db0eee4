//! Generates a CA and a serving certificate signed by it.
//!
//! Keys are ECDSA P-256: rcgen with the ring backend cannot generate RSA keys, and the API server, rustls and
//! every current TLS client accept P-256. Validity follows upstream's rotator (CA 10 years, serving
//! certificate 1 year, both back-dated one hour so a node with a slightly slow clock accepts them at once).

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    Ia5String, IsCa, KeyPair, SanType, PKCS_ECDSA_P256_SHA256,
};
use time::OffsetDateTime;

use super::extensions::{self, KeyUsage};

/// Common name and organisation of the CA, as upstream's rotator names it.
pub const CA_COMMON_NAME: &str = "azure-workload-identity-ca";
pub const CA_ORGANIZATION: &str = "azure-workload-identity";

/// CA lifetime: 10 years.
pub const CA_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 3600);
/// Serving certificate lifetime: 1 year.
pub const SERVING_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// How far `not_before` is moved into the past.
pub const BACKDATE: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error("at least one DNS name is needed for the serving certificate")]
    NoDnsNames,
    #[error("cannot generate the certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the system clock is outside the range certificates can express")]
    Clock,
    #[error("{0} does not parse as a certificate")]
    Unparsable(&'static str),
}

/// A freshly generated CA and serving certificate, all PEM.
#[derive(Clone)]
pub struct GeneratedCerts {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for GeneratedCerts {
    /// Private keys never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedCerts")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// Generates a CA and a serving certificate for `dns_names` (the first is also the common name), valid from
/// `now - BACKDATE`.
pub fn generate(dns_names: &[String], now: SystemTime) -> Result<GeneratedCerts, CertsError> {
    if dns_names.is_empty() {
        return Err(CertsError::NoDnsNames);
    }
    let ca = new_ca(now, CA_VALIDITY, BACKDATE)?;
    let not_after = now.checked_add(SERVING_VALIDITY).ok_or(CertsError::Clock)?;
    let leaf = issue_leaf(
        &SigningCa::own(&ca.key_pem)?,
        &ServingNames::dns(dns_names),
        now,
        not_after,
        BACKDATE,
    )?;
    Ok(GeneratedCerts {
        ca_cert_pem: ca.cert_pem,
        ca_key_pem: ca.key_pem,
        cert_pem: leaf.cert_pem,
        key_pem: leaf.key_pem,
    })
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct PemPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for PemPair {
    /// Private keys never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemPair")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// The CA's distinguished name and constraints. Rebuilt identically when signing with an existing CA key:
/// rcgen takes the issuer name from these parameters and the authority key identifier from the key, so a
/// leaf issued later chains to the CA certificate created earlier.
fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    params
        .distinguished_name
        .push(DnType::OrganizationName, CA_ORGANIZATION);
    // Path length 0: this CA signs serving certificates only, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.custom_extensions = vec![extensions::key_usage(&[
        KeyUsage::KeyCertSign,
        KeyUsage::CrlSign,
        KeyUsage::DigitalSignature,
    ])];
    params
}

/// A new self-signed CA valid from `now - backdate` for `validity` after `now`.
pub fn new_ca(
    now: SystemTime,
    validity: Duration,
    backdate: Duration,
) -> Result<PemPair, CertsError> {
    let mut params = ca_params();
    params.not_before = at(now.checked_sub(backdate))?;
    params.not_after = at(now.checked_add(validity))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    Ok(PemPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// What a serving certificate is issued for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServingNames {
    /// DNS names (dNSName entries); the first is also the common name.
    pub dns: Vec<String>,
    /// IP addresses (iPAddress entries, never dNSName: clients compare an IP only with those).
    pub ips: Vec<IpAddr>,
}

impl ServingNames {
    pub fn dns(names: &[String]) -> Self {
        Self {
            dns: names.to_vec(),
            ips: Vec::new(),
        }
    }

    fn subject_alt_names(&self) -> Result<Vec<SanType>, CertsError> {
        let dns = self
            .dns
            .iter()
            .map(|name| Ok(SanType::DnsName(Ia5String::try_from(name.as_str())?)));
        let ips = self.ips.iter().map(|ip| Ok(SanType::IpAddress(*ip)));
        dns.chain(ips).collect()
    }
}

/// A CA that signs serving certificates: the name and key identifier rcgen copies into the leaf, and the
/// CA's key.
pub struct SigningCa {
    issuer: rcgen::Certificate,
    key: KeyPair,
}

impl SigningCa {
    /// A CA made by [`new_ca`], from its key alone: the name is always ours (see [`ca_params`]).
    pub fn own(ca_key_pem: &str) -> Result<Self, CertsError> {
        let key = KeyPair::from_pem(ca_key_pem)?;
        // Only the name and key of this throw-away self-signature matter.
        let issuer = ca_params().self_signed(&key)?;
        Ok(Self { issuer, key })
    }

    /// Any CA: `ca_cert` gives the issuer name and key identifier, `key` signs. The caller checks that
    /// the certificate is a CA and that the key is its key (see `existing_ca`).
    pub(super) fn from_certificate(ca_cert: &[u8], key: KeyPair) -> Result<Self, CertsError> {
        let params = CertificateParams::from_ca_cert_der(&ca_cert.into())?;
        let issuer = params.self_signed(&key)?;
        Ok(Self { issuer, key })
    }
}

/// A serving certificate for `names` with a new key, signed by `ca`, valid from `now - backdate` until
/// `not_after`.
pub fn issue_leaf(
    ca: &SigningCa,
    names: &ServingNames,
    now: SystemTime,
    not_after: SystemTime,
    backdate: Duration,
) -> Result<PemPair, CertsError> {
    let first = names.dns.first().ok_or(CertsError::NoDnsNames)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;

    let mut params = CertificateParams::default();
    params.subject_alt_names = names.subject_alt_names()?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, first.as_str());
    // Not `IsCa::ExplicitNoCa`, which encodes `cA FALSE`: see `extensions`.
    params.is_ca = IsCa::NoCa;
    params.custom_extensions = vec![
        extensions::key_usage(&[KeyUsage::DigitalSignature]),
        extensions::not_a_ca(),
        extensions::subject_key_identifier(&key.public_key_der()),
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = at(now.checked_sub(backdate))?;
    params.not_after = at(Some(not_after))?;
    let cert = params.signed_by(&key, &ca.issuer, &ca.key)?;
    Ok(PemPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn at(time: Option<SystemTime>) -> Result<OffsetDateTime, CertsError> {
    time.map(OffsetDateTime::from).ok_or(CertsError::Clock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::*;

    fn der(pem: &str) -> Vec<u8> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
        pem.contents
    }

    fn epoch(t: SystemTime) -> i64 {
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after epoch");
        i64::try_from(secs.as_secs()).expect("fits")
    }

    #[test]
    fn serving_cert_is_signed_by_ca_with_names_usage_and_validity() {
        let now = SystemTime::now();
        let names = vec!["svc.ns.svc".to_owned(), "localhost".to_owned()];
        let certs = generate(&names, now).expect("generate");

        let ca_der = der(&certs.ca_cert_pem);
        let (_, ca) = parse_x509_certificate(&ca_der).expect("ca parses");
        let leaf_der = der(&certs.cert_pem);
        let (_, leaf) = parse_x509_certificate(&leaf_der).expect("leaf parses");

        assert!(ca.is_ca());
        assert_eq!(ca.subject(), ca.issuer());
        assert!(ca.subject().to_string().contains(CA_COMMON_NAME));
        assert!(ca.subject().to_string().contains(CA_ORGANIZATION));
        assert!(ca
            .key_usage()
            .expect("ku")
            .expect("ku")
            .value
            .key_cert_sign());
        assert_eq!(
            ca.basic_constraints()
                .expect("bc")
                .expect("bc")
                .value
                .path_len_constraint,
            Some(0)
        );

        assert!(!leaf.is_ca());
        assert_eq!(leaf.issuer(), ca.subject());
        assert!(leaf.subject().to_string().contains("svc.ns.svc"));
        leaf.verify_signature(Some(ca.public_key()))
            .expect("signed by the CA");
        let sans: Vec<String> = leaf
            .subject_alternative_name()
            .expect("san")
            .expect("san")
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some((*d).to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(sans, names);
        let eku = leaf.extended_key_usage().expect("eku").expect("eku").value;
        assert!(eku.server_auth);
        assert!(!eku.client_auth);

        let start = epoch(now) - 3600;
        for (cert, life) in [(&ca, CA_VALIDITY), (&leaf, SERVING_VALIDITY)] {
            let nb = cert.validity().not_before.timestamp();
            let na = cert.validity().not_after.timestamp();
            assert!((nb - start).abs() <= 1, "not_before {nb} vs {start}");
            let end = epoch(now) + i64::try_from(life.as_secs()).expect("fits");
            assert!((na - end).abs() <= 1, "not_after {na} vs {end}");
        }
        assert!(certs.key_pem.contains("PRIVATE KEY"));
        assert!(!format!("{certs:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn refuses_no_dns_names_and_invalid_ones() {
        assert!(matches!(
            generate(&[], SystemTime::now()),
            Err(CertsError::NoDnsNames)
        ));
        assert!(matches!(
            generate(&["bad name\u{7f}é".to_owned()], SystemTime::now()),
            Err(CertsError::Generate(_))
        ));
    }
}
