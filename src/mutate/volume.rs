//! The projected service-account token volume: its name, its sources, and the operation that makes
//! `spec.volumes` hold it.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::mutate::settings::ClusterCa;

use super::identity::Identity;
use super::names::*;
use super::patch::{
    ClusterTrustBundleProjection, ConfigMapProjection, KeyToPath, PatchOp, PatchValue, Pointer,
    Projected, ProjectionSource, ServiceAccountTokenProjection, Volume,
};
use super::view::PodView;

/// `azure-workload-identity-reserved-<first 30 hex of sha256(pod name)>`, unless the pod already has
/// a reserved volume: a reinvocation after `metadata.name` was filled in reuses it (W12).
pub fn volume_name(pod: &PodView<'_>) -> Arc<str> {
    let existing = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .and_then(|vs| {
            vs.iter()
                .find(|v| v.name.as_str().starts_with(VOLUME_NAME_PREFIX))
        });
    if let Some(volume) = existing {
        return Arc::from(volume.name.as_str());
    }
    with_derived_volume_name(&pod.name_for_volume(), |name| Arc::from(name))
}

pub fn derived_volume_name(pod_name: &str) -> String {
    with_derived_volume_name(pod_name, str::to_owned)
}

/// The prefix and 30 hex digits.
const DERIVED_NAME_LEN: usize = VOLUME_NAME_PREFIX.len() + 30;

/// Hands the derived name to `take` from a stack buffer, so the caller's copy is its only allocation.
fn with_derived_volume_name<R>(pod_name: &str, take: impl FnOnce(&str) -> R) -> R {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(pod_name.as_bytes());
    let mut name = [0u8; DERIVED_NAME_LEN];
    let (prefix, digits) = name.split_at_mut(VOLUME_NAME_PREFIX.len());
    prefix.copy_from_slice(VOLUME_NAME_PREFIX.as_bytes());
    for (pair, byte) in digits.chunks_exact_mut(2).zip(&digest[..15]) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
    // Only ASCII was written, so this never falls back.
    take(std::str::from_utf8(&name).unwrap_or(VOLUME_NAME_PREFIX))
}

/// The token, plus the cluster CA for identity-binding pods when it is projected from the cluster.
pub fn sources(identity: &Identity<'_>) -> Vec<ProjectionSource> {
    let mut sources = vec![ProjectionSource::ServiceAccountToken(
        ServiceAccountTokenProjection {
            audience: Arc::clone(identity.audience),
            expiration_seconds: identity.token_expiration_seconds,
            path: TOKEN_PATH,
        },
    )];
    match identity.identity_binding.map(|ib| &ib.ca) {
        Some(ClusterCa::ConfigMap(name)) => {
            sources.push(ProjectionSource::ConfigMap(ConfigMapProjection {
                name: name.clone(),
                items: vec![KeyToPath {
                    key: CA_CONFIGMAP_KEY,
                    path: CA_PATH,
                }],
                optional: false,
            }))
        }
        Some(ClusterCa::ClusterTrustBundle {
            signer_name,
            label_selector,
        }) => sources.push(ProjectionSource::ClusterTrustBundle(
            ClusterTrustBundleProjection {
                signer_name: signer_name.clone(),
                label_selector: label_selector.clone(),
                optional: false,
                path: CA_PATH,
            },
        )),
        Some(ClusterCa::Data(_)) | Some(ClusterCa::None) | None => {}
    }
    sources
}

/// Whether the CA is a file in the volume, which decides `AZURE_KUBERNETES_CA_FILE` (W04).
pub fn projects_ca_file(identity: &Identity<'_>) -> bool {
    matches!(
        identity.identity_binding.map(|ib| &ib.ca),
        Some(ClusterCa::ConfigMap(_)) | Some(ClusterCa::ClusterTrustBundle { .. })
    )
}

/// Appends the volume, or brings an existing one up to date by replacing only its sources, so that
/// server-defaulted fields such as `defaultMode` survive and an up-to-date volume yields no operation
/// (W13).
pub fn volume_op(
    pod: &PodView<'_>,
    name: &Arc<str>,
    sources: Vec<ProjectionSource>,
) -> Option<PatchOp> {
    let volumes = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    let Some(volumes) = volumes else {
        return Some(PatchOp::add(
            Pointer::Fixed("/spec/volumes"),
            PatchValue::Volumes(vec![new_volume(name, sources)]),
        ));
    };
    let Some((index, existing)) = volumes
        .iter()
        .enumerate()
        .find(|(_, v)| v.name.as_str() == &**name)
    else {
        return Some(PatchOp::add(
            Pointer::Fixed("/spec/volumes/-"),
            PatchValue::Volume(new_volume(name, sources)),
        ));
    };
    let Some(projected) = existing.projected else {
        return Some(PatchOp::replace(
            Pointer::Item {
                list: "/spec/volumes",
                index,
                rest: "",
            },
            PatchValue::Volume(new_volume(name, sources)),
        ));
    };
    if existing_sources_match(projected.get(), &sources) {
        return None;
    }
    Some(PatchOp::replace(
        Pointer::Item {
            list: "/spec/volumes",
            index,
            rest: "/projected/sources",
        },
        PatchValue::Sources(sources),
    ))
}

fn new_volume(name: &Arc<str>, sources: Vec<ProjectionSource>) -> Volume {
    Volume {
        name: name.clone(),
        projected: Projected { sources },
    }
}

fn existing_sources_match(projected_raw: &str, wanted: &[ProjectionSource]) -> bool {
    let Ok(projected) = serde_json::from_str::<serde_json::Value>(projected_raw) else {
        return false;
    };
    match serde_json::to_value(wanted) {
        Ok(wanted) => projected.get("sources") == Some(&wanted),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::derived_volume_name;

    #[test]
    fn derives_upstream_volume_names() {
        assert_eq!(
            derived_volume_name("web-0"),
            "azure-workload-identity-reserved-1ae6fac6e0a6c45234c7f9a125d492"
        );
        assert_eq!(
            derived_volume_name("web-7d4b9c8f6d- (prefix)"),
            "azure-workload-identity-reserved-76164477d615f354283814a96cd2a0"
        );
        assert_eq!(derived_volume_name("x").len(), 63);
    }
}
