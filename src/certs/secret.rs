//! Reading and writing the certificate Secret with optimistic concurrency: every write carries the
//! `resourceVersion` it was computed from (or is a create), so of two replicas writing at once exactly one
//! wins and the other re-reads instead of overwriting.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{ObjectMeta, PostParams};
use kube::Api;

use super::plan::CertData;

pub(crate) const CA_CRT: &str = "ca.crt";
pub(crate) const CA_KEY: &str = "ca.key";
pub(crate) const TLS_CRT: &str = "tls.crt";
pub(crate) const TLS_KEY: &str = "tls.key";

/// The outcome of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    Done,
    /// Someone else wrote first (409): re-read and decide again.
    Conflict,
}

/// The certificate keys of a Secret (missing or non-UTF-8 keys read as empty).
pub(crate) fn cert_data(secret: &Secret) -> CertData {
    let text = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
            .unwrap_or_default()
    };
    CertData {
        ca_crt: text(CA_CRT),
        ca_key: text(CA_KEY),
        tls_crt: text(TLS_CRT),
        tls_key: text(TLS_KEY),
    }
}

fn put_data(data: &mut BTreeMap<String, ByteString>, certs: &CertData) {
    for (key, value) in [
        (CA_CRT, &certs.ca_crt),
        (CA_KEY, &certs.ca_key),
        (TLS_CRT, &certs.tls_crt),
        (TLS_KEY, &certs.tls_key),
    ] {
        data.insert(key.to_owned(), ByteString(value.as_bytes().to_vec()));
    }
}

/// Creates the Secret as type `kubernetes.io/tls` (so tools recognise `tls.crt`/`tls.key`).
pub(crate) async fn create(
    api: &Api<Secret>,
    name: &str,
    certs: &CertData,
) -> Result<Write, kube::Error> {
    let mut data = BTreeMap::new();
    put_data(&mut data, certs);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(
                "azure-workload-identity.io/system".to_owned(),
                "true".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Secret::default()
    };
    conflict_to_write(api.create(&PostParams::default(), &secret).await)
}

/// Replaces the certificate keys of `existing`, keeping its other keys, labels and type (a pre-existing
/// Secret may be `Opaque`, and the type is immutable). Conditional on `existing`'s resourceVersion.
pub(crate) async fn update(
    api: &Api<Secret>,
    mut existing: Secret,
    certs: &CertData,
) -> Result<Write, kube::Error> {
    let name = existing.metadata.name.clone().unwrap_or_default();
    put_data(existing.data.get_or_insert_with(BTreeMap::new), certs);
    // `stringData` is write-only and would override `data` if a previous writer left it.
    existing.string_data = None;
    conflict_to_write(api.replace(&name, &PostParams::default(), &existing).await)
}

pub(crate) fn conflict_to_write<T>(result: Result<T, kube::Error>) -> Result<Write, kube::Error> {
    match result {
        Ok(_) => Ok(Write::Done),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Write::Conflict),
        Err(e) => Err(e),
    }
}
