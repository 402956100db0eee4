//! The naive baseline: how the upstream Go webhook (controller-runtime) handles a review. The whole
//! AdmissionReview is decoded into owned, typed structs, the object into a k8s-openapi `Pod`; the
//! typed pod is mutated, serialised back, and the patch is the `json_patch::diff` between the original
//! object and the re-serialised one (Go: `json.Marshal(pod)` then `jsonpatch.CreatePatch`).
//!
//! The mutation follows the real core's rules for what the fixtures exercise: workload-identity env
//! (added by name, user values win), the token mount, the projected volume and the
//! `injected-identity` record. Identity binding, the proxy sidecar and reinvocation refreshes are
//! out of scope: no fixture uses them.
#![allow(dead_code)]

use azwi_webhook::mutate::derived_volume_name;
use azwi_webhook::mutate::names::*;
use azwi_webhook::mutate::service_account::ServiceAccountMeta;
use azwi_webhook::mutate::settings::Settings;
use base64::Engine;
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::core::v1::{
    EnvVar, Pod, ProjectedVolumeSource, ServiceAccountTokenProjection, Volume, VolumeMount,
    VolumeProjection,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// The v1 AdmissionReview as Go's `admissionv1.AdmissionReview` decodes it: every field, owned.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdmissionReview {
    api_version: String,
    kind: String,
    request: Option<AdmissionRequest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdmissionRequest {
    uid: String,
    kind: GroupVersionKind,
    resource: GroupVersionResource,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    request_kind: Option<GroupVersionKind>,
    #[serde(default)]
    request_resource: Option<GroupVersionResource>,
    #[serde(default)]
    request_sub_resource: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    operation: String,
    user_info: UserInfo,
    /// `runtime.RawExtension`: the object's bytes, decoded into a `Pod` afterwards.
    #[serde(default)]
    object: Option<Box<RawValue>>,
    #[serde(default)]
    old_object: Option<Box<RawValue>>,
    #[serde(default)]
    dry_run: Option<bool>,
    #[serde(default)]
    options: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct GroupVersionKind {
    group: String,
    version: String,
    kind: String,
}

#[derive(Deserialize)]
struct GroupVersionResource {
    group: String,
    version: String,
    resource: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseReview<'a> {
    api_version: &'a str,
    kind: &'a str,
    response: Response<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    uid: &'a str,
    allowed: bool,
    patch_type: &'static str,
    patch: String,
}

/// One review in, one response out, the upstream way. `None` for anything but a decodable pod
/// CREATE: the baseline only has to cover the fixtures.
pub fn admit(body: &[u8], settings: &Settings, sa: &ServiceAccountMeta) -> Option<Vec<u8>> {
    let review: AdmissionReview = serde_json::from_slice(body).ok()?;
    let request = review.request?;
    if request.kind.kind != "Pod" || request.operation != "CREATE" {
        return None;
    }
    let raw = request.object?;
    let mut pod: Pod = serde_json::from_str(raw.get()).ok()?;
    mutate(&mut pod, settings, sa);
    let original: Value = serde_json::from_str(raw.get()).ok()?;
    let patched = serde_json::to_value(&pod).ok()?;
    let patch = json_patch::diff(&original, &patched);
    let patch_json = serde_json::to_vec(&patch).ok()?;
    serde_json::to_vec(&ResponseReview {
        api_version: &review.api_version,
        kind: &review.kind,
        response: Response {
            uid: &request.uid,
            allowed: true,
            patch_type: "JSONPatch",
            patch: base64::engine::general_purpose::STANDARD.encode(patch_json),
        },
    })
    .ok()
}

/// The workload-identity mutation on a typed pod.
pub fn mutate(pod: &mut Pod, settings: &Settings, sa: &ServiceAccountMeta) {
    let annotation = |pod: &Pod, key: &str| -> Option<String> {
        pod.metadata
            .annotations
            .as_ref()?
            .get(key)
            .filter(|v| !v.is_empty())
            .cloned()
    };
    let client_id = sa
        .annotations
        .get(CLIENT_ID_ANNOTATION)
        .unwrap_or_default()
        .to_owned();
    let tenant_id = sa
        .annotations
        .get(TENANT_ID_ANNOTATION)
        .filter(|t| !t.is_empty())
        .map_or_else(|| settings.tenant_id.to_string(), str::to_owned);
    let expiration = annotation(pod, TOKEN_EXPIRATION_ANNOTATION)
        .or_else(|| {
            sa.annotations
                .get(TOKEN_EXPIRATION_ANNOTATION)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_TOKEN_EXPIRATION_SECONDS);
    let env: Vec<(&str, &str)> = [
        (ENV_CLIENT_ID, client_id.as_str()),
        (ENV_TENANT_ID, tenant_id.as_str()),
        (ENV_TOKEN_FILE, TOKEN_FILE),
        (ENV_AUTHORITY_HOST, &*settings.authority_host),
    ]
    .into_iter()
    .filter(|(_, value)| !value.is_empty())
    .collect();
    let skip: Vec<String> = annotation(pod, SKIP_CONTAINERS_ANNOTATION)
        .map(|list| {
            list.split(';')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let pod_name = match pod.metadata.name.as_deref() {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => format!(
            "{} (prefix)",
            pod.metadata.generate_name.as_deref().unwrap_or("")
        ),
    };
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let volume_name = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name.starts_with(VOLUME_NAME_PREFIX))
        .map(|v| v.name.clone())
        .unwrap_or_else(|| derived_volume_name(&pod_name));

    let init = spec.init_containers.iter_mut().flatten();
    for container in init.chain(spec.containers.iter_mut()) {
        if skip.contains(&container.name) {
            continue;
        }
        let existing = container.env.get_or_insert_with(Vec::new);
        for (name, value) in &env {
            if !existing.iter().any(|e| e.name == *name) {
                existing.push(EnvVar {
                    name: (*name).to_owned(),
                    value: Some((*value).to_owned()),
                    value_from: None,
                });
            }
        }
        let mounts = container.volume_mounts.get_or_insert_with(Vec::new);
        if !mounts.iter().any(|m| m.mount_path == MOUNT_PATH) {
            mounts.push(VolumeMount {
                name: volume_name.clone(),
                mount_path: MOUNT_PATH.to_owned(),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
    }
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    if !volumes.iter().any(|v| v.name == volume_name) {
        volumes.push(Volume {
            name: volume_name,
            projected: Some(ProjectedVolumeSource {
                default_mode: None,
                sources: Some(vec![VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: Some(settings.audience.to_string()),
                        expiration_seconds: Some(expiration),
                        path: TOKEN_PATH.to_owned(),
                    }),
                    ..VolumeProjection::default()
                }]),
            }),
            ..Volume::default()
        });
    }
    let record = serde_json::json!({"clientID": client_id, "tenantID": tenant_id}).to_string();
    pod.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(INJECTED_IDENTITY_ANNOTATION.to_owned(), record);
}
