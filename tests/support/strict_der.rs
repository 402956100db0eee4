//! A strict X.509 check for the certificates the webhook generates, as strict clients see them (Python
//! `cryptography`, Go's `encoding/asn1` in newer releases, the Rust `der` crate): the certificate and
//! each extension we emit must decode with the `der` crate and re-encode to the very same bytes. DER has
//! exactly one encoding per value, so any difference (an encoded DEFAULT such as `cA FALSE`, a named bit
//! list with trailing zero bits, a SET OF out of order, a non-minimal length) is a violation.
//!
//! Include with `#[path = "support/strict_der.rs"] mod strict_der;`.
#![allow(dead_code)]

use std::net::IpAddr;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::{Decode, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAltName,
    SubjectKeyIdentifier,
};
use x509_cert::Certificate;

/// What the strict check learnt about one certificate.
#[derive(Debug, Clone, Default)]
pub struct StrictCert {
    /// `None` when the certificate has no BasicConstraints extension.
    pub basic_constraints: Option<BasicConstraints>,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// Subject (RFC 4514 string).
    pub subject: String,
    pub issuer: String,
}

impl StrictCert {
    pub fn is_ca(&self) -> bool {
        self.basic_constraints.as_ref().is_some_and(|bc| bc.ca)
    }
}

/// Every certificate of a PEM text, strictly checked.
pub fn strict_pem(pem: &str) -> Result<Vec<StrictCert>, String> {
    let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("PEM: {e:?}"))?;
    if ders.is_empty() {
        return Err("no certificate in the PEM text".to_owned());
    }
    ders.iter().map(|der| strict_certificate(der)).collect()
}

/// Decodes `der` strictly; `Err` says which part is not canonical DER.
pub fn strict_certificate(der: &[u8]) -> Result<StrictCert, String> {
    let cert = Certificate::from_der(der).map_err(|e| format!("certificate: {e}"))?;
    let again = cert
        .to_der()
        .map_err(|e| format!("certificate re-encoding: {e}"))?;
    if again != der {
        return Err("the certificate does not re-encode to the same DER".to_owned());
    }
    let tbs = &cert.tbs_certificate;
    let mut out = StrictCert {
        subject: tbs.subject.to_string(),
        issuer: tbs.issuer.to_string(),
        ..StrictCert::default()
    };
    for extension in tbs.extensions.iter().flatten() {
        let value = extension.extn_value.as_bytes();
        let id = extension.extn_id;
        if id == BasicConstraints::OID {
            out.basic_constraints = Some(canonical::<BasicConstraints>(value, "BasicConstraints")?);
        } else if id == KeyUsage::OID {
            canonical::<KeyUsage>(value, "KeyUsage")?;
        } else if id == ExtendedKeyUsage::OID {
            canonical::<ExtendedKeyUsage>(value, "ExtendedKeyUsage")?;
        } else if id == SubjectKeyIdentifier::OID {
            canonical::<SubjectKeyIdentifier>(value, "SubjectKeyIdentifier")?;
        } else if id == AuthorityKeyIdentifier::OID {
            canonical::<AuthorityKeyIdentifier>(value, "AuthorityKeyIdentifier")?;
        } else if id == SubjectAltName::OID {
            let names = canonical::<SubjectAltName>(value, "SubjectAltName")?;
            for name in names.0 {
                match name {
                    GeneralName::DnsName(dns) => out.dns_names.push(dns.to_string()),
                    GeneralName::IpAddress(octets) => {
                        out.ip_addresses.push(ip_address(octets.as_bytes())?)
                    }
                    other => return Err(format!("unexpected SubjectAltName entry {other:?}")),
                }
            }
        } else {
            return Err(format!("extension {id} is not one the webhook emits"));
        }
    }
    Ok(out)
}

fn canonical<T>(value: &[u8], what: &str) -> Result<T, String>
where
    T: for<'a> Decode<'a> + Encode,
{
    let decoded = T::from_der(value).map_err(|e| format!("{what}: {e}"))?;
    let again = decoded
        .to_der()
        .map_err(|e| format!("{what} re-encoding: {e}"))?;
    if again != value {
        return Err(format!(
            "{what} is not canonical DER: {value:02x?} re-encodes as {again:02x?}"
        ));
    }
    Ok(decoded)
}

fn ip_address(octets: &[u8]) -> Result<IpAddr, String> {
    match octets.len() {
        4 => Ok(IpAddr::from(
            <[u8; 4]>::try_from(octets).map_err(|e| e.to_string())?,
        )),
        16 => Ok(IpAddr::from(
            <[u8; 16]>::try_from(octets).map_err(|e| e.to_string())?,
        )),
        n => Err(format!("iPAddress of {n} bytes")),
    }
}
