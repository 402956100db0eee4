//! Where pods live in manifests: a Pod is one, workload controllers carry a pod template at a
//! kind-specific path. The mutation core works on pods, so its operations are re-rooted here.

use serde_json::Value;

use super::documents::{self, invalid, meta_str, type_name, Document};
use super::label_selector::Labels;
use super::InjectError;
use crate::mutate::patch::escape_token;
use crate::mutate::view::effective_service_account;

/// One pod or pod template to consider.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Index into the document list.
    pub document: usize,
    /// JSON pointer of the pod (or template) inside the document, e.g. `/items/2/spec/template`.
    pub pod_pointer: String,
    pub kind: String,
    /// The object's name (or `generateName`), for messages.
    pub name: String,
    /// The workload's namespace; template pods are created there whatever the template says.
    pub namespace: String,
    /// For templates: the `generateName`-style prefix the offline volume name is derived from.
    pub volume_prefix: Option<String>,
    /// The pod's (or template's) labels, which the webhook configuration's objectSelector is
    /// matched against; a controller's pods carry its template's.
    pub labels: Labels,
    pub service_account: String,
}

impl Workload {
    /// `Deployment demo/web` or `Pod demo/app`.
    pub fn describe(&self) -> String {
        format!("{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Where the pod template of each supported kind is. Groups are checked so a custom resource that
/// happens to be called `Deployment` is left alone.
fn template_pointer(group: &str, kind: &str) -> Option<&'static str> {
    match (group, kind) {
        ("", "Pod") => Some(""),
        ("apps" | "extensions", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet") => {
            Some("/spec/template")
        }
        ("batch", "Job") => Some("/spec/template"),
        ("batch", "CronJob") => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

/// Every pod and pod template of the documents, in input order.
pub fn find(documents: &[Document], default_namespace: &str) -> Result<Vec<Workload>, InjectError> {
    let mut out = Vec::new();
    for (index, document) in documents.iter().enumerate() {
        let mut objects = Vec::new();
        documents::objects(&document.value, "", &mut objects);
        for (object_pointer, object) in objects {
            let (group, kind) = documents::group_kind(object);
            let Some(template) = template_pointer(group, kind) else {
                continue;
            };
            let pod_pointer = format!("{object_pointer}{template}");
            let pod = match object.pointer(template) {
                Some(pod) if pod.is_object() => pod,
                Some(other) if !other.is_null() => {
                    return Err(invalid(
                        document,
                        &pod_pointer,
                        format!("expected a mapping, found {}", type_name(other)),
                    ))
                }
                _ => {
                    return Err(invalid(
                        document,
                        &pod_pointer,
                        format!("missing: a {kind} needs a pod template"),
                    ))
                }
            };
            check_pod(document, pod, &pod_pointer)?;
            let name = meta_str(object, "name")
                .or_else(|| meta_str(object, "generateName"))
                .unwrap_or_default()
                .to_owned();
            let volume_prefix = (!template.is_empty()).then(|| template_prefix(object));
            out.push(Workload {
                document: index,
                pod_pointer,
                kind: kind.to_owned(),
                name,
                namespace: meta_str(object, "namespace")
                    .unwrap_or(default_namespace)
                    .to_owned(),
                volume_prefix,
                labels: pod_labels(pod),
                service_account: effective_service_account(
                    pod.pointer("/spec/serviceAccountName")
                        .and_then(Value::as_str),
                    pod.pointer("/spec/serviceAccount").and_then(Value::as_str),
                )
                .to_owned(),
            });
        }
    }
    Ok(out)
}

/// `metadata.labels`, whose values [`check_pod`] has checked are strings.
fn pod_labels(pod: &Value) -> Labels {
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    labels
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_owned())))
        .collect()
}

/// The controller names its pods after the workload (`<name>-<suffix>`), so the template is given
/// `generateName: <name>-` for the volume name. The real prefix (a Deployment's pods get
/// `<deployment>-<replicaset hash>-`) is unknowable offline.
fn template_prefix(object: &Value) -> String {
    match meta_str(object, "name") {
        Some(name) => format!("{name}-"),
        None => meta_str(object, "generateName")
            .unwrap_or_default()
            .to_owned(),
    }
}

/// Checks the types of every field the mutation reads, so a mistake is reported with its path
/// instead of as a decoding error somewhere in the pod.
fn check_pod(document: &Document, pod: &Value, at: &str) -> Result<(), InjectError> {
    let check = Checker { document };
    if let Some(metadata) = check.object_at(pod, at, "metadata")? {
        let at = format!("{at}/metadata");
        for field in ["name", "generateName", "namespace"] {
            check.string_at(metadata, &at, field)?;
        }
        for field in ["labels", "annotations"] {
            if let Some(map) = check.object_at(metadata, &at, field)? {
                for (key, value) in map.as_object().into_iter().flatten() {
                    if !value.is_string() {
                        let pointer = format!("{at}/{field}/{}", escape_token(key));
                        return Err(invalid(
                            document,
                            &pointer,
                            format!(
                                "expected a string, found {} (quote the value, e.g. \"true\")",
                                type_name(value)
                            ),
                        ));
                    }
                }
            }
        }
    }
    let Some(spec) = check.object_at(pod, at, "spec")? else {
        return Err(invalid(document, &format!("{at}/spec"), "missing".into()));
    };
    let at = format!("{at}/spec");
    check.string_at(spec, &at, "serviceAccountName")?;
    check.string_at(spec, &at, "serviceAccount")?;
    for field in ["initContainers", "containers"] {
        for (i, container) in check.objects_at(spec, &at, field)? {
            let at = format!("{at}/{field}/{i}");
            check.string_at(container, &at, "name")?;
            for (j, env) in check.objects_at(container, &at, "env")? {
                let at = format!("{at}/env/{j}");
                check.string_at(env, &at, "name")?;
                check.string_at(env, &at, "value")?;
            }
            for (j, mount) in check.objects_at(container, &at, "volumeMounts")? {
                let at = format!("{at}/volumeMounts/{j}");
                for field in ["name", "mountPath", "subPath"] {
                    check.string_at(mount, &at, field)?;
                }
            }
        }
    }
    for (i, volume) in check.objects_at(spec, &at, "volumes")? {
        check.string_at(volume, &format!("{at}/volumes/{i}"), "name")?;
    }
    Ok(())
}

struct Checker<'d> {
    document: &'d Document,
}

impl Checker<'_> {
    fn wrong(&self, pointer: String, expected: &str, found: &Value) -> InjectError {
        invalid(
            self.document,
            &pointer,
            format!("expected {expected}, found {}", type_name(found)),
        )
    }

    fn string_at(&self, parent: &Value, at: &str, field: &str) -> Result<(), InjectError> {
        match parent.get(field) {
            None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
            Some(other) => Err(self.wrong(format!("{at}/{field}"), "a string", other)),
        }
    }

    fn object_at<'v>(
        &self,
        parent: &'v Value,
        at: &str,
        field: &str,
    ) -> Result<Option<&'v Value>, InjectError> {
        match parent.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(value @ Value::Object(_)) => Ok(Some(value)),
            Some(other) => Err(self.wrong(format!("{at}/{field}"), "a mapping", other)),
        }
    }

    fn objects_at<'v>(
        &self,
        parent: &'v Value,
        at: &str,
        field: &str,
    ) -> Result<Vec<(usize, &'v Value)>, InjectError> {
        let items = match parent.get(field) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(other) => return Err(self.wrong(format!("{at}/{field}"), "a list", other)),
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if !item.is_object() {
                return Err(self.wrong(format!("{at}/{field}/{i}"), "a mapping", item));
            }
            out.push((i, item));
        }
        Ok(out)
    }
}

/// Prefixes every operation's path with the pod's location in the document.
pub fn reroot(ops: &mut Value, pod_pointer: &str) {
    if pod_pointer.is_empty() {
        return;
    }
    for op in ops.as_array_mut().into_iter().flatten() {
        if let Some(Value::String(path)) = op.get_mut("path") {
            *path = format!("{pod_pointer}{path}");
        }
    }
}
