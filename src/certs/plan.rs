//! Decides what the certificate Secret should contain, given what it contains now and the time. Pure (no
//! I/O, the clock is a parameter), so every rotation step is unit-tested without an API server.
//!
//! Timing is derived from the certificates themselves (`notBefore + backdate` is "issued at"), so no extra
//! state has to be stored or kept consistent between replicas.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use rcgen::KeyPair;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::generate::{
    issue_leaf, new_ca, CertsError, ServingNames, SigningCa, BACKDATE, CA_VALIDITY,
    SERVING_VALIDITY,
};
use crate::tls::{CertInfo, LoadedCert};

/// Lifetimes and renewal windows. The defaults suit production; tests shrink them to seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub ca_validity: Duration,
    pub leaf_validity: Duration,
    /// A new CA is added once the signing CA has less than this left.
    pub ca_renew_before: Duration,
    /// The leaf is renewed once it has less than a third of its lifetime, or less than this, left.
    pub leaf_renew_min: Duration,
    /// How long a new CA is published before it signs the leaf, and how long the previous CA stays
    /// published after the leaf moved away from it. Must comfortably exceed the rotation check interval
    /// (every replica must have re-read the Secret) and the API server's webhook-configuration propagation.
    pub ca_overlap: Duration,
    /// `notBefore` is this far in the past, so a node with a slightly slow clock accepts new certificates.
    pub backdate: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            ca_validity: CA_VALIDITY,
            leaf_validity: SERVING_VALIDITY,
            ca_renew_before: Duration::from_secs(365 * 24 * 3600),
            leaf_renew_min: Duration::from_secs(30 * 24 * 3600),
            ca_overlap: Duration::from_secs(24 * 3600),
            backdate: BACKDATE,
        }
    }
}

/// The four Secret keys, PEM text. `ca_crt` is the bundle of every CA clients must trust (the
/// `caBundle`); `ca_key` is the key of the CA that signs new leaves (the last one in the bundle).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CertData {
    pub ca_crt: String,
    pub ca_key: String,
    pub tls_crt: String,
    pub tls_key: String,
}

impl std::fmt::Debug for CertData {
    /// Private keys never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertData")
            .field("ca_crt", &self.ca_crt)
            .field("tls_crt", &self.tls_crt)
            .finish_non_exhaustive()
    }
}

/// What the Secret should contain, and why it differs (empty `reasons`: nothing to write).
#[derive(Debug, Clone)]
pub struct Plan {
    pub data: CertData,
    pub reasons: Vec<&'static str>,
}

impl Plan {
    pub fn changed(&self) -> bool {
        !self.reasons.is_empty()
    }
}

struct Ca {
    der: CertificateDer<'static>,
    spki: Vec<u8>,
    not_before: i64,
    not_after: i64,
}

struct Leaf {
    chain: Vec<CertificateDer<'static>>,
    not_before: i64,
    not_after: i64,
}

/// Computes the next Secret contents: adds a CA when the signing one nears expiry, moves the leaf to the
/// newest CA once it has been published for `ca_overlap`, renews the leaf in time, and drops a retired CA
/// only `ca_overlap` after the leaf stopped depending on it. Anything unusable is replaced.
pub fn plan(
    current: &CertData,
    dns_names: &[String],
    policy: &Policy,
    now: SystemTime,
    provider: &Arc<CryptoProvider>,
) -> Result<Plan, CertsError> {
    let now_s = unix(now)?;
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let (backdate, overlap) = (secs(policy.backdate), secs(policy.ca_overlap));
    let mut reasons = Vec::new();

    let parsed = parse_bundle(&current.ca_crt);
    let unexpired = parsed.len();
    let mut cas: Vec<Ca> = parsed
        .into_iter()
        .filter(|ca| ca.not_after > now_s)
        .collect();
    if cas.len() != unexpired {
        reasons.push("expired CA dropped");
    }
    let signer_key = KeyPair::from_pem(&current.ca_key).ok();
    let current_signer = signer_key.as_ref().and_then(|key| {
        let spki = key.public_key_der();
        cas.iter().rposition(|ca| ca.spki == spki)
    });
    let mut ca_key = current.ca_key.clone();
    let renew_before = secs(policy.ca_renew_before);
    let signer = match current_signer.filter(|&i| cas[i].not_after - now_s >= renew_before) {
        Some(i) => i,
        None => {
            let fresh = new_ca(now, policy.ca_validity, policy.backdate)?;
            let mut parsed = parse_bundle(&fresh.cert_pem);
            let ca = parsed.pop().ok_or(CertsError::Unparsable("new CA"))?;
            cas.push(ca);
            ca_key = fresh.key_pem;
            reasons.push(if cas.len() == 1 {
                "new CA"
            } else {
                "CA rotation: new CA published beside the old"
            });
            cas.len() - 1
        }
    };
    let signer_added = cas[signer].not_before.saturating_add(backdate);

    let leaf = parse_leaf(current, provider);
    let chains = |leaf: &Leaf, ca: &Ca| chains_to(leaf, ca, dns_names, now, provider);
    let issuer = leaf
        .as_ref()
        .and_then(|l| cas.iter().position(|ca| chains(l, ca)));
    let due = |l: &Leaf| {
        let lifetime = l.not_after - l.not_before.saturating_add(backdate);
        l.not_after - now_s < (lifetime / 3).max(secs(policy.leaf_renew_min))
    };
    let overlap_end = signer_added.saturating_add(overlap);
    // Which CA (index) issues a new leaf, if one is needed.
    let issue_from = match (&leaf, issuer) {
        (Some(l), Some(i)) if i == signer => due(l).then_some(signer),
        (Some(l), Some(i)) => {
            let expires_in_overlap = l.not_after <= overlap_end;
            if now_s >= overlap_end {
                Some(signer)
            } else if current_signer == Some(i) && (expires_in_overlap || due(l)) {
                // The pass that adds a new CA still holds the old CA's key: renew from the old CA, because
                // nobody trusts the new one yet (its caBundle is written after this Secret).
                Some(i)
            } else if expires_in_overlap {
                // Last resort (no key for the leaf's CA): a new CA's leaf beats an expired one.
                Some(signer)
            } else {
                None
            }
        }
        _ => Some(signer),
    };

    let (tls_crt, tls_key, leaf_issuer, leaf_issued) = match (&leaf, issuer, issue_from) {
        (Some(l), Some(i), None) => (
            current.tls_crt.clone(),
            current.tls_key.clone(),
            i,
            l.not_before.saturating_add(backdate),
        ),
        (_, _, from) => {
            let from = from.unwrap_or(signer);
            reasons.push(if issuer.is_none() {
                "no usable serving certificate"
            } else if issuer == Some(from) {
                "serving certificate renewal"
            } else {
                "serving certificate moved to the new CA"
            });
            let key = if from == signer {
                &ca_key
            } else {
                &current.ca_key
            };
            let ca_end = u64::try_from(cas[from].not_after)
                .map(|s| UNIX_EPOCH + Duration::from_secs(s))
                .unwrap_or(UNIX_EPOCH);
            let not_after = now
                .checked_add(policy.leaf_validity)
                .ok_or(CertsError::Clock)?
                .min(ca_end);
            let pair = issue_leaf(
                &SigningCa::own(key)?,
                &ServingNames::dns(dns_names),
                now,
                not_after,
                policy.backdate,
            )?;
            (pair.cert_pem, pair.key_pem, from, now_s)
        }
    };

    // A replica may still serve the previous leaf until it re-reads the Secret: keep every CA for
    // `overlap` after the leaf was issued; after that only the signer and the leaf's issuer are needed.
    let keep_all = now_s < leaf_issued.saturating_add(overlap);
    let before = cas.len();
    let kept: Vec<&Ca> = cas
        .iter()
        .enumerate()
        .filter(|(i, _)| keep_all || *i == signer || *i == leaf_issuer)
        .map(|(_, ca)| ca)
        .collect();
    if kept.len() != before {
        reasons.push("retired CA dropped");
    }
    let ca_crt: String = kept.iter().map(|ca| pem("CERTIFICATE", &ca.der)).collect();
    if reasons.is_empty() && ca_crt != current.ca_crt {
        reasons.push("CA bundle normalised");
    }
    Ok(Plan {
        data: CertData {
            ca_crt,
            ca_key,
            tls_crt,
            tls_key,
        },
        reasons,
    })
}

/// The Secret's leaf and key as a servable [`LoadedCert`], if they parse and belong together.
pub fn loaded_cert(data: &CertData, provider: &CryptoProvider) -> Option<LoadedCert> {
    let chain = CertificateDer::pem_slice_iter(data.tls_crt.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let (_, leaf) = x509_parser::parse_x509_certificate(chain.first()?.as_ref()).ok()?;
    let info = CertInfo {
        not_after: leaf.validity().not_after.timestamp(),
        subject: leaf.subject().to_string(),
        chain_len: chain.len(),
    };
    let key = PrivateKeyDer::from_pem_slice(data.tls_key.as_bytes()).ok()?;
    // Checks that the key's public half is the leaf's.
    let key = CertifiedKey::from_der(chain, key, provider).ok()?;
    Some(LoadedCert {
        key: Arc::new(key),
        info,
    })
}

/// The CA certificates in a PEM bundle; anything that does not parse as a CA is left out.
fn parse_bundle(bundle: &str) -> Vec<Ca> {
    CertificateDer::pem_slice_iter(bundle.as_bytes())
        .filter_map(Result::ok)
        .filter_map(|der| {
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
            let ca = Ca {
                spki: cert.tbs_certificate.subject_pki.raw.to_vec(),
                not_before: cert.validity().not_before.timestamp(),
                not_after: cert.validity().not_after.timestamp(),
                der: der.clone(),
            };
            cert.is_ca().then_some(ca)
        })
        .collect()
}

fn parse_leaf(data: &CertData, provider: &CryptoProvider) -> Option<Leaf> {
    let loaded = loaded_cert(data, provider)?;
    let chain = loaded.key.cert.clone();
    let (_, cert) = x509_parser::parse_x509_certificate(chain.first()?.as_ref()).ok()?;
    Some(Leaf {
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        chain,
    })
}

/// Whether a TLS client trusting only `ca` accepts `leaf` for every name at `now`: the same check the
/// API server makes (chain, validity, serverAuth usage, names).
fn chains_to(
    leaf: &Leaf,
    ca: &Ca,
    dns_names: &[String],
    now: SystemTime,
    provider: &Arc<CryptoProvider>,
) -> bool {
    let mut roots = RootCertStore::empty();
    if roots.add(ca.der.clone()).is_err() {
        return false;
    }
    let Ok(verifier) =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()
    else {
        return false;
    };
    let Some((end_entity, intermediates)) = leaf.chain.split_first() else {
        return false;
    };
    let Ok(since_epoch) = now.duration_since(UNIX_EPOCH) else {
        return false;
    };
    let at = UnixTime::since_unix_epoch(since_epoch);
    !dns_names.is_empty()
        && dns_names.iter().all(|name| {
            ServerName::try_from(name.clone()).is_ok_and(|server_name| {
                verifier
                    .verify_server_cert(end_entity, intermediates, &server_name, &[], at)
                    .is_ok()
            })
        })
}

fn unix(now: SystemTime) -> Result<i64, CertsError> {
    let since = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CertsError::Clock)?;
    i64::try_from(since.as_secs()).map_err(|_| CertsError::Clock)
}

/// PEM with 64-character lines, as every PEM reader expects.
pub(super) fn pem(label: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
