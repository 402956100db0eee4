//! The patch as JSON text, written field by field for the values every review carries (env vars,
//! mounts, the token volume); the proxy's containers, the metadata object and a trust-bundle
//! source, which are rare, go through their `Serialize` impls. A unit test holds both writers to
//! the same JSON for every shape of value.

use super::patch::{
    escaped_token_pieces, ConfigMapProjection, EnvVar, OpKind, PatchOp, PatchValue, Pointer,
    ProjectionSource, ServiceAccountTokenProjection, Volume, VolumeMount,
};
use crate::json_text::{push_escaped, push_str};

/// Serialises the operations as a JSON array. Every value is made of strings, numbers, booleans
/// and JSON values, which always serialise: an error can only be a bug, answered by no patch.
pub fn to_json(ops: &[PatchOp]) -> Vec<u8> {
    let mut out = Vec::new();
    write_json(ops, &mut out);
    out
}

/// [`to_json`] appended to `out`, for a caller that reuses one buffer from review to review.
pub fn write_json(ops: &[PatchOp], out: &mut Vec<u8>) {
    let start = out.len();
    out.reserve(ops.len() * 160 + 2);
    if write_ops(out, ops).is_err() {
        out.truncate(start);
        out.extend_from_slice(b"[]");
    }
}

fn write_ops(out: &mut Vec<u8>, ops: &[PatchOp]) -> serde_json::Result<()> {
    let mut written = Written::default();
    write_array(out, ops, |out, op| write_op(out, op, &mut written))
}

/// The env vars and mounts already written, by the identity of their parts: every container of a
/// pod gets the same ones (shared `Arc`s and static names), so each is escaped once and copied
/// after that.
#[derive(Default)]
struct Written {
    entries: [Option<WrittenEntry>; 8],
    next: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Identity {
    EnvVar {
        name: *const u8,
        name_len: usize,
        value: *const u8,
    },
    Mount {
        name: *const u8,
        path: *const u8,
        path_len: usize,
        read_only: bool,
    },
}

#[derive(Clone, Copy)]
struct WrittenEntry {
    identity: Identity,
    start: usize,
    end: usize,
}

impl Written {
    /// Copies the text written for `identity` before, or writes it with `write` and remembers it.
    fn write(&mut self, out: &mut Vec<u8>, identity: Identity, write: impl FnOnce(&mut Vec<u8>)) {
        if let Some(entry) = self
            .entries
            .iter()
            .flatten()
            .find(|e| e.identity == identity)
        {
            out.extend_from_within(entry.start..entry.end);
            return;
        }
        let start = out.len();
        write(out);
        // The oldest entry makes room: a pod with more distinct values only copies less.
        self.entries[self.next] = Some(WrittenEntry {
            identity,
            start,
            end: out.len(),
        });
        self.next = (self.next + 1) % self.entries.len();
    }

    fn env_var(&mut self, out: &mut Vec<u8>, var: &EnvVar) {
        let identity = Identity::EnvVar {
            name: var.name.as_ptr(),
            name_len: var.name.len(),
            value: std::sync::Arc::as_ptr(&var.value).cast::<u8>(),
        };
        self.write(out, identity, |out| write_env_var(out, var));
    }

    fn mount(&mut self, out: &mut Vec<u8>, mount: &VolumeMount) {
        let identity = Identity::Mount {
            name: std::sync::Arc::as_ptr(&mount.name).cast::<u8>(),
            path: mount.mount_path.as_ptr(),
            path_len: mount.mount_path.len(),
            read_only: mount.read_only,
        };
        self.write(out, identity, |out| write_mount(out, mount));
    }
}

fn write_op(out: &mut Vec<u8>, op: &PatchOp, written: &mut Written) -> serde_json::Result<()> {
    out.extend_from_slice(match op.op {
        OpKind::Add => b"{\"op\":\"add\",\"path\":",
        OpKind::Replace => b"{\"op\":\"replace\",\"path\":",
        OpKind::Remove => b"{\"op\":\"remove\",\"path\":",
    });
    write_pointer(out, &op.path);
    if !matches!(op.value, PatchValue::None) {
        out.extend_from_slice(b",\"value\":");
        write_value(out, &op.value, written)?;
    }
    out.push(b'}');
    Ok(())
}

/// The pointer as a JSON string.
fn write_pointer(out: &mut Vec<u8>, pointer: &Pointer) {
    out.push(b'"');
    write_pointer_text(out, pointer, push_escaped);
    out.push(b'"');
}

/// The pointer's text, its escaped key pieces written by `push_token` (JSON-escaped in the patch,
/// copied as they are by the pointer's `Display`): the one place that spells a pointer out.
pub(super) fn write_pointer_text(
    out: &mut Vec<u8>,
    pointer: &Pointer,
    push_token: fn(&mut Vec<u8>, &str),
) {
    match *pointer {
        Pointer::Fixed(text) => push_plain(out, text),
        Pointer::Item { list, index, rest } => {
            push_plain(out, list);
            push_index(out, index);
            push_plain(out, rest);
        }
        Pointer::Nested {
            list,
            index,
            field,
            item,
            rest,
        } => {
            push_plain(out, list);
            push_index(out, index);
            push_plain(out, field);
            push_index(out, item);
            push_plain(out, rest);
        }
        Pointer::Key { object, key } => {
            push_plain(out, object);
            out.push(b'/');
            for piece in escaped_token_pieces(key) {
                push_token(out, piece);
            }
        }
    }
}

/// A pointer's fixed parts are field names this webhook spells itself, which need no JSON escape:
/// copied as they are, since scanning each short part for escapes cost a fifth of writing the
/// typical patch.
fn push_plain(out: &mut Vec<u8>, text: &'static str) {
    debug_assert!(
        !text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20),
        "{text:?} needs escaping"
    );
    out.extend_from_slice(text.as_bytes());
}

/// A quoted `&'static str`: the names and paths the webhook spells itself need no escape either.
fn push_plain_str(out: &mut Vec<u8>, text: &'static str) {
    out.push(b'"');
    push_plain(out, text);
    out.push(b'"');
}

/// `/{index}`.
fn push_index(out: &mut Vec<u8>, index: usize) {
    out.push(b'/');
    out.extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
}

fn write_value(
    out: &mut Vec<u8>,
    value: &PatchValue,
    written: &mut Written,
) -> serde_json::Result<()> {
    match value {
        PatchValue::None => out.extend_from_slice(b"null"),
        PatchValue::String(text) => push_str(out, text),
        PatchValue::EnvVar(var) => written.env_var(out, var),
        PatchValue::EnvVars(vars) => write_array(out, vars, |out, var| {
            written.env_var(out, var);
            Ok(())
        })?,
        PatchValue::VolumeMount(mount) => written.mount(out, mount),
        PatchValue::VolumeMounts(mounts) => write_array(out, mounts, |out, mount| {
            written.mount(out, mount);
            Ok(())
        })?,
        PatchValue::Volume(volume) => write_volume(out, volume)?,
        PatchValue::Volumes(volumes) => write_array(out, volumes, write_volume)?,
        PatchValue::Sources(sources) => write_array(out, sources, write_source)?,
        PatchValue::Map(pairs) => {
            out.push(b'{');
            for (i, (key, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                push_str(out, key);
                out.push(b':');
                push_str(out, value);
            }
            out.push(b'}');
        }
        PatchValue::Container(_) | PatchValue::Containers(_) | PatchValue::Metadata(_) => {
            serde_json::to_writer(&mut *out, value)?
        }
    }
    Ok(())
}

fn write_array<T>(
    out: &mut Vec<u8>,
    items: &[T],
    mut write: impl FnMut(&mut Vec<u8>, &T) -> serde_json::Result<()>,
) -> serde_json::Result<()> {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item)?;
    }
    out.push(b']');
    Ok(())
}

fn write_env_var(out: &mut Vec<u8>, var: &EnvVar) {
    out.extend_from_slice(b"{\"name\":");
    push_plain_str(out, var.name);
    out.extend_from_slice(b",\"value\":");
    push_str(out, &var.value);
    out.push(b'}');
}

fn write_mount(out: &mut Vec<u8>, mount: &VolumeMount) {
    out.extend_from_slice(b"{\"name\":");
    push_str(out, &mount.name);
    out.extend_from_slice(b",\"mountPath\":");
    push_plain_str(out, mount.mount_path);
    out.extend_from_slice(if mount.read_only {
        b",\"readOnly\":true}"
    } else {
        b",\"readOnly\":false}"
    });
}

fn write_volume(out: &mut Vec<u8>, volume: &Volume) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"name\":");
    push_str(out, &volume.name);
    out.extend_from_slice(b",\"projected\":{\"sources\":");
    write_array(out, &volume.projected.sources, write_source)?;
    out.extend_from_slice(b"}}");
    Ok(())
}

fn write_source(out: &mut Vec<u8>, source: &ProjectionSource) -> serde_json::Result<()> {
    match source {
        ProjectionSource::ServiceAccountToken(token) => write_token(out, token),
        ProjectionSource::ConfigMap(config_map) => write_config_map(out, config_map),
        ProjectionSource::ClusterTrustBundle(_) => serde_json::to_writer(&mut *out, source)?,
    }
    Ok(())
}

fn write_token(out: &mut Vec<u8>, token: &ServiceAccountTokenProjection) {
    out.extend_from_slice(b"{\"serviceAccountToken\":{\"audience\":");
    push_str(out, &token.audience);
    out.extend_from_slice(b",\"expirationSeconds\":");
    out.extend_from_slice(
        itoa::Buffer::new()
            .format(token.expiration_seconds)
            .as_bytes(),
    );
    out.extend_from_slice(b",\"path\":");
    push_str(out, token.path);
    out.extend_from_slice(b"}}");
}

fn write_config_map(out: &mut Vec<u8>, config_map: &ConfigMapProjection) {
    out.extend_from_slice(b"{\"configMap\":{\"name\":");
    push_str(out, &config_map.name);
    out.extend_from_slice(b",\"items\":[");
    for (i, item) in config_map.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"key\":");
        push_str(out, item.key);
        out.extend_from_slice(b",\"path\":");
        push_str(out, item.path);
        out.push(b'}');
    }
    out.extend_from_slice(if config_map.optional {
        b"],\"optional\":true}}"
    } else {
        b"],\"optional\":false}}"
    });
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::mutate::patch::{
        Capabilities, ClusterTrustBundleProjection, Container, KeyToPath, MetadataPatch, Projected,
        SecurityContext,
    };

    const TRICKY: &str = "q\"b\\s/n\nt\tc\u{1}é😀 long enough to cross a word";

    fn token() -> ProjectionSource {
        ProjectionSource::ServiceAccountToken(ServiceAccountTokenProjection {
            audience: TRICKY.into(),
            expiration_seconds: 3607,
            path: "azure-identity-token",
        })
    }

    fn every_shape() -> Vec<PatchOp> {
        let var = EnvVar {
            name: "AZURE_CLIENT_ID",
            value: TRICKY.into(),
        };
        let mount = |read_only| VolumeMount {
            name: TRICKY.into(),
            mount_path: "/var/run/secrets/azure/tokens",
            read_only,
        };
        let config_map = |optional| {
            ProjectionSource::ConfigMap(ConfigMapProjection {
                name: TRICKY.into(),
                items: vec![
                    KeyToPath {
                        key: "ca.crt",
                        path: "ca.crt",
                    },
                    KeyToPath {
                        key: "k",
                        path: "p",
                    },
                ],
                optional,
            })
        };
        let bundle = ProjectionSource::ClusterTrustBundle(ClusterTrustBundleProjection {
            signer_name: "example.com/signer".to_owned(),
            label_selector: json!({"matchLabels": {"a": TRICKY}}),
            optional: true,
            path: "ca.crt",
        });
        let volume = Volume {
            name: "azure-identity-token".into(),
            projected: Projected {
                sources: vec![token(), config_map(false), bundle.clone()],
            },
        };
        let container = Container {
            name: "azwi-proxy",
            image: TRICKY.into(),
            image_pull_policy: "IfNotPresent",
            args: vec!["--proxy-port=8000".to_owned()],
            env: vec![var.clone()],
            ports: Vec::new(),
            resources: None,
            lifecycle: None,
            security_context: SecurityContext {
                allow_privilege_escalation: Some(false),
                capabilities: Capabilities {
                    add: Vec::new(),
                    drop: vec!["ALL"],
                },
                privileged: false,
                read_only_root_filesystem: Some(true),
                run_as_non_root: true,
                run_as_user: Some(1501),
            },
            restart_policy: Some("Always"),
        };
        vec![
            PatchOp::add(
                Pointer::Key {
                    object: "/metadata/annotations",
                    key: TRICKY,
                },
                PatchValue::EnvVar(var.clone()),
            ),
            PatchOp::remove(Pointer::Key {
                object: "/metadata/annotations",
                key: "~1/\"~0\\/",
            }),
            PatchOp::add(
                Pointer::Fixed("/spec/containers/1/env"),
                PatchValue::EnvVars(vec![var.clone(), var]),
            ),
            PatchOp::add(Pointer::Fixed("/a"), PatchValue::EnvVars(Vec::new())),
            PatchOp::replace(
                Pointer::Nested {
                    list: "/spec/containers",
                    index: 0,
                    field: "/env",
                    item: 2,
                    rest: "/value",
                },
                PatchValue::String(TRICKY.into()),
            ),
            PatchOp::remove(Pointer::Nested {
                list: "/spec/containers",
                index: 10,
                field: "/env",
                item: 3,
                rest: "",
            }),
            PatchOp::add(Pointer::Fixed("/m"), PatchValue::VolumeMount(mount(true))),
            PatchOp::add(
                Pointer::Fixed("/ms"),
                PatchValue::VolumeMounts(vec![mount(false), mount(true)]),
            ),
            PatchOp::add(
                Pointer::Item {
                    list: "/spec/volumes",
                    index: 7,
                    rest: "/projected",
                },
                PatchValue::Volume(volume.clone()),
            ),
            PatchOp::add(
                Pointer::Fixed("/spec/volumes"),
                PatchValue::Volumes(vec![volume]),
            ),
            PatchOp::add(
                Pointer::Fixed("/s"),
                PatchValue::Sources(vec![token(), config_map(true), bundle]),
            ),
            PatchOp::add(
                Pointer::Fixed("/c"),
                PatchValue::Container(Box::new(container.clone())),
            ),
            PatchOp::add(
                Pointer::Fixed("/cs"),
                PatchValue::Containers(vec![container]),
            ),
            PatchOp::add(
                Pointer::Fixed("/metadata/annotations"),
                PatchValue::Map(vec![
                    (TRICKY.into(), TRICKY.into()),
                    ("b".into(), String::new()),
                ]),
            ),
            PatchOp::add(
                Pointer::Fixed("/metadata"),
                PatchValue::Metadata(MetadataPatch {
                    annotations: vec![("k".into(), TRICKY.into())],
                }),
            ),
        ]
    }

    /// Shared env vars and mounts are copied from their first writing: more distinct ones than
    /// the memo holds, interleaved, and one mount name shared by read-only and writable mounts.
    #[test]
    fn values_written_once_and_copied_read_the_same_as_serialised() {
        const NAMES: [&str; 4] = ["AZURE_A", "AZURE_B", "AZURE_C", "AZURE_CLIENT_ID"];
        let vars: Vec<EnvVar> = (0..11)
            .map(|i| EnvVar {
                name: NAMES[i % NAMES.len()],
                value: format!("{TRICKY}{}", i % 3).into(),
            })
            .collect();
        let name: std::sync::Arc<str> = TRICKY.into();
        let mount = |read_only| VolumeMount {
            name: name.clone(),
            mount_path: "/var/run/secrets/azure/tokens",
            read_only,
        };
        let mut ops = Vec::new();
        for round in 0..3 {
            for (i, var) in vars.iter().enumerate() {
                let path = Pointer::Item {
                    list: "/spec/containers",
                    index: i,
                    rest: "/env/-",
                };
                ops.push(PatchOp::add(path, PatchValue::EnvVar(var.clone())));
                if (i + round) % 4 == 0 {
                    let path = Pointer::Fixed("/spec/containers/0/volumeMounts/-");
                    ops.push(PatchOp::add(
                        path,
                        PatchValue::VolumeMount(mount(i % 2 == 0)),
                    ));
                }
            }
            ops.push(PatchOp::add(
                Pointer::Fixed("/spec/initContainers/0/env"),
                PatchValue::EnvVars(vars.iter().rev().cloned().collect()),
            ));
        }
        assert_eq!(
            String::from_utf8(to_json(&ops)).expect("UTF-8"),
            serde_json::to_string(&ops).expect("serialises")
        );
    }

    #[test]
    fn writes_the_same_json_as_the_serialize_impls_for_every_shape() {
        let ops = every_shape();
        let written: Value = serde_json::from_slice(&to_json(&ops)).expect("valid JSON");
        let serialised = serde_json::to_value(&ops).expect("serialises");
        assert_eq!(written, serialised);
        // Key order too: the API server does not care, but a reader diffing patches does.
        assert_eq!(
            String::from_utf8(to_json(&ops)).expect("UTF-8"),
            serde_json::to_string(&ops).expect("serialises")
        );
    }

    #[test]
    fn no_operations_is_an_empty_array() {
        assert_eq!(to_json(&[]), b"[]");
    }
}
