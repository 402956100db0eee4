//! RFC 6902 operations against the raw request object, with typed values so the patch is written in
//! one pass without building a JSON tree.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

use crate::mutate::settings::ContainerResources;

/// One JSON Patch operation. `remove` only ever takes back a value this webhook injected itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatchOp {
    pub op: OpKind,
    pub path: Pointer,
    #[serde(skip_serializing_if = "PatchValue::is_none")]
    pub value: PatchValue,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

/// Where an operation applies: a JSON Pointer (RFC 6901) held as its parts and written out only
/// with the patch, so that addressing a container's env var costs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pointer {
    /// A location spelt out in full, e.g. `/spec/volumes/-`.
    Fixed(&'static str),
    /// `{list}/{index}{rest}`: an element of a list or a place inside one, e.g.
    /// `/spec/volumes/2/projected/sources`.
    Item {
        list: &'static str,
        index: usize,
        rest: &'static str,
    },
    /// `{list}/{index}{field}/{item}{rest}`: an element of a list held by an element of a list,
    /// e.g. `/spec/containers/0/env/3/value`.
    Nested {
        list: &'static str,
        index: usize,
        field: &'static str,
        item: usize,
        rest: &'static str,
    },
    /// `{object}/{key}`, the key escaped as a reference token when written: annotation keys
    /// contain `/`.
    Key {
        object: &'static str,
        key: &'static str,
    },
}

impl fmt::Display for Pointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Vec::new();
        write_pointer_text(&mut text, self, |out, piece| {
            out.extend_from_slice(piece.as_bytes())
        });
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Pointer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl PatchOp {
    pub fn add(path: Pointer, value: PatchValue) -> Self {
        PatchOp {
            op: OpKind::Add,
            path,
            value,
        }
    }

    pub fn replace(path: Pointer, value: PatchValue) -> Self {
        PatchOp {
            op: OpKind::Replace,
            path,
            value,
        }
    }

    pub fn remove(path: Pointer) -> Self {
        PatchOp {
            op: OpKind::Remove,
            path,
            value: PatchValue::None,
        }
    }
}

/// Every shape of value the webhook writes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum PatchValue {
    /// No value: `remove`.
    None,
    String(String),
    EnvVar(EnvVar),
    EnvVars(Vec<EnvVar>),
    VolumeMount(VolumeMount),
    VolumeMounts(Vec<VolumeMount>),
    Volume(Volume),
    Volumes(Vec<Volume>),
    Sources(Vec<ProjectionSource>),
    /// Boxed: a container is several times larger than every other value.
    Container(Box<Container>),
    Containers(Vec<Container>),
    #[serde(serialize_with = "serialize_pairs")]
    Map(Vec<(String, String)>),
    Metadata(MetadataPatch),
}

impl PatchValue {
    fn is_none(&self) -> bool {
        matches!(self, PatchValue::None)
    }
}

/// `value` is shared: every container of a pod gets the same values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvVar {
    pub name: &'static str,
    #[serde(serialize_with = "serialize_shared")]
    pub value: Arc<str>,
}

/// `name` is shared: every container of a pod mounts the same volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    #[serde(serialize_with = "serialize_shared")]
    pub name: Arc<str>,
    pub mount_path: &'static str,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Volume {
    #[serde(serialize_with = "serialize_shared")]
    pub name: Arc<str>,
    pub projected: Projected,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Projected {
    pub sources: Vec<ProjectionSource>,
}

/// A projected volume source, serialised exactly as the Kubernetes API spells it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProjectionSource {
    ServiceAccountToken(ServiceAccountTokenProjection),
    ConfigMap(ConfigMapProjection),
    ClusterTrustBundle(ClusterTrustBundleProjection),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccountTokenProjection {
    #[serde(serialize_with = "serialize_shared")]
    pub audience: Arc<str>,
    pub expiration_seconds: i64,
    pub path: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigMapProjection {
    pub name: String,
    pub items: Vec<KeyToPath>,
    pub optional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyToPath {
    pub key: &'static str,
    pub path: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterTrustBundleProjection {
    pub signer_name: String,
    pub label_selector: serde_json::Value,
    pub optional: bool,
    pub path: &'static str,
}

/// The few container fields the proxy containers set; everything else is left to API defaulting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: &'static str,
    pub image: String,
    pub image_pull_policy: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    /// `None` when no request or limit is configured, so that no `resources` field is emitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ContainerResources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    pub security_context: SecurityContext,
    /// `Always` makes an init container a native sidecar.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<&'static str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    pub container_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    pub post_start: LifecycleHandler,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LifecycleHandler {
    pub exec: ExecAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExecAction {
    pub command: Vec<String>,
}

/// Optional fields are the ones only one of the proxy containers sets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityContext {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    pub capabilities: Capabilities,
    pub privileged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    pub run_as_non_root: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<&'static str>,
    pub drop: Vec<&'static str>,
}

/// `{"annotations": {...}}`, for a pod that has no `metadata` at all.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetadataPatch {
    #[serde(serialize_with = "serialize_pairs")]
    pub annotations: Vec<(String, String)>,
}

/// Writes key/value pairs as a JSON object, in order.
fn serialize_pairs<S: serde::Serializer>(
    pairs: &[(String, String)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

/// Writes shared text as the plain string it holds (serde's `rc` feature is not enabled).
fn serialize_shared<S: Serializer>(text: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(text)
}

/// Escapes one JSON Pointer reference token (RFC 6901): annotation keys contain `/`.
pub fn escape_token(token: &str) -> String {
    let mut escaped = String::with_capacity(token.len() + 4);
    escaped.extend(escaped_token_pieces(token));
    escaped
}

/// `token` escaped as a reference token, in pieces: runs of plain text, `~0` for each `~` and `~1`
/// for each `/`. Lets a pointer be escaped straight into its output.
pub(super) fn escaped_token_pieces(token: &str) -> impl Iterator<Item = &str> {
    token.split_inclusive(['~', '/']).flat_map(|piece| {
        if let Some(plain) = piece.strip_suffix('~') {
            [plain, "~0"]
        } else if let Some(plain) = piece.strip_suffix('/') {
            [plain, "~1"]
        } else {
            [piece, ""]
        }
    })
}

use super::patch_json::write_pointer_text;
pub use super::patch_json::{to_json, write_json};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_pointer_tokens() {
        assert_eq!(escape_token("plain"), "plain");
        assert_eq!(
            escape_token("azure.workload.identity/x"),
            "azure.workload.identity~1x"
        );
        assert_eq!(escape_token("a~b/c"), "a~0b~1c");
        assert_eq!(escape_token(""), "");
        assert_eq!(escape_token("~~//"), "~0~0~1~1");
        assert_eq!(escape_token("é/ü~"), "é~1ü~0");
        assert_eq!(escape_token("/01"), "~101");
    }

    #[test]
    fn writes_pointers_from_their_parts() {
        let written = [
            Pointer::Fixed("/spec/volumes/-"),
            Pointer::Item {
                list: "/spec/volumes",
                index: 12,
                rest: "/projected/sources",
            },
            Pointer::Item {
                list: "/spec/containers",
                index: 0,
                rest: "",
            },
            Pointer::Nested {
                list: "/spec/initContainers",
                index: 3,
                field: "/env",
                item: 10,
                rest: "/value",
            },
            Pointer::Key {
                object: "/metadata/annotations",
                key: "azure.workload.identity/injected~identity",
            },
        ]
        .map(|pointer| pointer.to_string());
        assert_eq!(
            written,
            [
                "/spec/volumes/-",
                "/spec/volumes/12/projected/sources",
                "/spec/containers/0",
                "/spec/initContainers/3/env/10/value",
                "/metadata/annotations/azure.workload.identity~1injected~0identity",
            ]
        );
    }

    #[test]
    fn serialises_map_values_as_objects() {
        let op = PatchOp::add(
            Pointer::Fixed("/metadata/annotations"),
            PatchValue::Map(vec![("k".into(), "v".into())]),
        );
        // The untagged Map variant holds pairs; they must not come out as an array of arrays.
        let json = String::from_utf8(to_json(&[op])).unwrap_or_default();
        assert!(json.contains(r#""value":{"k":"v"}"#), "{json}");
    }
}
