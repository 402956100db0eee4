//! Runs the webhook's mutation core on every pod and pod template, applies the operations to the
//! documents and records, per workload, what happened and why.

use std::borrow::Cow;

use serde_json::{json, Value};

use super::accounts::{Accounts, Origin};
use super::documents::{Document, Location};
use super::rbac::Rbac;
use super::workloads::{self, Workload};
use super::InjectError;
use crate::mutate::names::{INJECTED_IDENTITY_ANNOTATION, MOUNT_PATH, VOLUME_NAME_PREFIX};
use crate::mutate::view::{MetadataView, PodView, Str};
use crate::mutate::{self, patch, Rejection};
use crate::mutate::settings::Settings;

/// What happened to one workload.
#[derive(Debug)]
pub enum Decision {
    /// No `azure.workload.identity/use: "true"` label (and no `--all`).
    NotSelected,
    /// The service account is in none of the sources.
    NoServiceAccount {
        namespace: String,
        name: String,
    },
    /// The webhook would refuse the pod.
    Denied(Rejection),
    Injected(Box<Injection>),
}

/// What the injected pod ends up with.
#[derive(Debug, Default)]
pub struct Injection {
    /// Number of patch operations; 0 when the pod was already injected.
    pub operations: usize,
    pub origin: Option<Origin>,
    pub client_id: String,
    pub tenant_id: String,
    pub audience: String,
    pub expiration_seconds: Option<i64>,
    pub volume: String,
    pub containers: Vec<String>,
    pub env: Vec<String>,
    pub identity_binding: bool,
    pub rbac: RbacStatus,
    /// The webhook's warnings, plus the offline RBAC finding.
    pub warnings: Vec<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub enum RbacStatus {
    /// Not an identity-binding pod: the webhook checks nothing.
    #[default]
    NotApplicable,
    /// No Role, ClusterRole or binding in the input.
    NotChecked,
    Granted(String),
    Missing,
}

#[derive(Debug)]
pub struct Report {
    pub location: Location,
    pub workload: Workload,
    pub decision: Decision,
}

/// The mutated documents, the patch of each changed document, and a report per workload.
#[derive(Debug, Default)]
pub struct Processed {
    pub documents: Vec<Document>,
    /// `(document index, operations)` for documents that changed.
    pub patches: Vec<(usize, Vec<Value>)>,
    pub reports: Vec<Report>,
}

pub struct Context<'a> {
    pub settings: &'a Settings,
    pub accounts: &'a Accounts,
    pub rbac: &'a Rbac,
    pub all: bool,
}

pub fn process(
    context: &Context<'_>,
    mut documents: Vec<Document>,
    workloads: Vec<Workload>,
) -> Result<Processed, InjectError> {
    let mut patches: Vec<(usize, Vec<Value>)> = Vec::new();
    let mut reports = Vec::with_capacity(workloads.len());
    for workload in workloads {
        let Some(document) = documents.get_mut(workload.document) else {
            return Err(InjectError::Internal {
                message: format!("{}: no document {}", workload.describe(), workload.document),
            });
        };
        let location = document.location.clone();
        let decision = if !workload.labelled && !context.all {
            Decision::NotSelected
        } else {
            match context
                .accounts
                .get(&workload.namespace, &workload.service_account)
            {
                None => Decision::NoServiceAccount {
                    namespace: workload.namespace.clone(),
                    name: workload.service_account.clone(),
                },
                Some((account, origin)) => {
                    let pod = document
                        .value
                        .pointer(&workload.pod_pointer)
                        .cloned()
                        .unwrap_or(Value::Null);
                    match plan(context.settings, &workload, &pod, account)? {
                        Err(rejection) => Decision::Denied(rejection),
                        Ok((ops, warnings)) => {
                            apply(document, &ops)?;
                            let pod = document
                                .value
                                .pointer(&workload.pod_pointer)
                                .unwrap_or(&Value::Null);
                            let mut injection = describe(context, pod);
                            injection.operations = ops.len();
                            injection.origin = Some(origin.clone());
                            injection.warnings = warnings;
                            rbac_finding(context, &workload, &mut injection);
                            if !ops.is_empty() {
                                match patches.last_mut() {
                                    Some((index, all)) if *index == workload.document => {
                                        all.extend(ops)
                                    }
                                    _ => patches.push((workload.document, ops)),
                                }
                            }
                            Decision::Injected(Box::new(injection))
                        }
                    }
                }
            }
        };
        reports.push(Report {
            location,
            workload,
            decision,
        });
    }
    Ok(Processed {
        documents,
        patches,
        reports,
    })
}

/// Patch operations (re-rooted at the pod) and the webhook's warnings.
type Planned = (Vec<Value>, Vec<String>);

/// The core's operations, re-rooted at the pod's place in the document. The outer `Result` is an
/// input problem, the inner one the webhook's verdict.
fn plan(
    settings: &Settings,
    workload: &Workload,
    pod: &Value,
    account: &crate::mutate::service_account::ServiceAccountMeta,
) -> Result<Result<Planned, Rejection>, InjectError> {
    let raw = pod.to_string();
    let mut view = PodView::from_json(&raw).map_err(|e| InjectError::Internal {
        message: format!("{}: the pod does not decode: {e}", workload.describe()),
    })?;
    let mut ops = Vec::new();
    if let Some(prefix) = workload.volume_prefix.as_deref() {
        let unnamed = view.display_name().is_empty();
        if unnamed && !prefix.is_empty() {
            // A template has no name; its pods get `generateName` from the controller. Give the view
            // that prefix so the volume is named as for such a pod (see the module docs).
            if view.metadata.is_none() {
                view.metadata = Some(MetadataView::default());
                ops.push(json!({"op": "add", "path": "/metadata", "value": {}}));
            }
            if let Some(metadata) = view.metadata.as_mut() {
                metadata.generate_name = Some(Str(Cow::Owned(prefix.to_owned())));
            }
        }
    }
    let mutation = match mutate::plan(settings, &view, account) {
        Ok(mutation) => mutation,
        Err(rejection) => return Ok(Err(rejection)),
    };
    if mutation.ops.is_empty() {
        ops.clear();
    }
    let planned: Value = serde_json::from_slice(&patch::to_json(&mutation.ops)).map_err(|e| {
        InjectError::Internal {
            message: e.to_string(),
        }
    })?;
    ops.extend(planned.as_array().cloned().unwrap_or_default());
    let mut ops = Value::Array(ops);
    workloads::reroot(&mut ops, &workload.pod_pointer);
    let ops = match ops {
        Value::Array(ops) => ops,
        _ => Vec::new(),
    };
    Ok(Ok((ops, mutation.warnings)))
}

fn apply(document: &mut Document, ops: &[Value]) -> Result<(), InjectError> {
    if ops.is_empty() {
        return Ok(());
    }
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(ops.to_vec())).map_err(|e| InjectError::Internal {
            message: format!(
                "{}: the webhook's patch does not parse: {e}",
                document.location
            ),
        })?;
    json_patch::patch(&mut document.value, &patch).map_err(|e| InjectError::Internal {
        message: format!(
            "{}: the webhook's patch does not apply: {e}",
            document.location
        ),
    })
}

/// Reads the result back from the injected pod, so `--explain` shows what is there, not what was
/// intended.
fn describe(context: &Context<'_>, pod: &Value) -> Injection {
    let mut injection = Injection::default();
    if let Some(record) = pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(INJECTED_IDENTITY_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|r| serde_json::from_str::<Value>(r).ok())
    {
        let field = |name| record.get(name).and_then(Value::as_str).unwrap_or_default();
        injection.client_id = field("clientID").to_owned();
        injection.tenant_id = field("tenantID").to_owned();
    }
    let volumes = pod.pointer("/spec/volumes").and_then(Value::as_array);
    let volume = volumes.into_iter().flatten().find(|v| {
        v.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.starts_with(VOLUME_NAME_PREFIX))
    });
    if let Some(volume) = volume {
        injection.volume = volume["name"].as_str().unwrap_or_default().to_owned();
        let token = volume
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find_map(|s| s.get("serviceAccountToken"));
        if let Some(token) = token {
            injection.audience = token["audience"].as_str().unwrap_or_default().to_owned();
            injection.expiration_seconds = token["expirationSeconds"].as_i64();
        }
    }
    injection.identity_binding = context
        .settings
        .identity_binding
        .as_ref()
        .is_some_and(|ib| ib.audience == injection.audience);
    for field in ["initContainers", "containers"] {
        let containers = pod
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array);
        for container in containers.into_iter().flatten() {
            let mounted = container
                .get("volumeMounts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH));
            if !mounted {
                continue;
            }
            let name = container["name"].as_str().unwrap_or_default().to_owned();
            if injection.env.is_empty() {
                injection.env = container
                    .get("env")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.get("name").and_then(Value::as_str))
                    .filter(|n| n.starts_with("AZURE_"))
                    .map(str::to_owned)
                    .collect();
            }
            injection.containers.push(name);
        }
    }
    injection
}

/// The identity-binding permission, checked against the input's RBAC objects when there are any.
fn rbac_finding(context: &Context<'_>, workload: &Workload, injection: &mut Injection) {
    if !injection.identity_binding || injection.client_id.is_empty() {
        return;
    }
    if context.rbac.is_empty() {
        injection.rbac = RbacStatus::NotChecked;
        return;
    }
    let (namespace, account, client_id) = (
        &workload.namespace,
        &workload.service_account,
        &injection.client_id,
    );
    match context.rbac.grant(namespace, account, client_id) {
        Some(binding) => injection.rbac = RbacStatus::Granted(binding),
        None => {
            injection.rbac = RbacStatus::Missing;
            // `inject` has no --rbac-check of its own: the flag named is the webhook's.
            injection.warnings.push(format!(
                "no ClusterRoleBinding in the input grants service account {namespace}/{account} verb \
                 {} on {}/{client_id}; unless the cluster already has one, the webhook (with its \
                 default --rbac-check=deny) would reject the pod",
                super::rbac::VERB,
                super::rbac::API_GROUP,
            ));
            injection
                .warnings
                .extend(context.rbac.namespaced_only(namespace, account, client_id));
        }
    }
}
