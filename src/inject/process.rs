//! Runs the webhook's mutation core on every pod and pod template, applies the operations to the
//! documents and records, per workload, what happened and why.

use std::borrow::Cow;

use serde_json::{json, Value};

use super::accounts::{Accounts, Origin};
use super::documents::{Document, Location};
use super::rbac::Rbac;
use super::selection::Selection;
use super::webhook_config::NotSent;
use super::workloads::{self, Workload};
use super::InjectError;
use crate::k8s::authz::{self, AccessDecision, CheckReport, Verdict};
use crate::mutate::denial::{Denial, DenyReason};
use crate::mutate::settings::{RbacCheck, Settings};
use crate::mutate::view::{MetadataView, PodView, Str};
use crate::mutate::{self, patch, Plan, Runtime};

/// What happened to one workload.
#[derive(Debug)]
pub enum Finding {
    /// The webhook configuration does not send the pod to the webhook (and no `--all`): the
    /// cluster creates it as it is.
    NotSent(NotSent),
    /// The service account is in none of the sources.
    NoServiceAccount {
        namespace: String,
        name: String,
    },
    /// The webhook would refuse the pod.
    Denied(Denial),
    Injected(Box<Injection>),
}

/// What the injected pod ends up with: the webhook's plan for it, and the offline RBAC finding.
#[derive(Debug)]
pub struct Injection {
    /// Number of patch operations; 0 when the pod was already injected.
    pub operations: usize,
    pub origin: Origin,
    pub plan: Plan,
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
    /// Per client ID the containers present: the binding that grants it, or `None`.
    Checked(Vec<(String, Option<String>)>),
}

#[derive(Debug)]
pub struct Report {
    pub location: Location,
    pub workload: Workload,
    pub finding: Finding,
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
    pub selection: &'a Selection,
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
        let finding = if let Err(not_sent) = context.selection.check(&workload) {
            Finding::NotSent(not_sent)
        } else {
            match context
                .accounts
                .get(&workload.namespace, &workload.service_account)
            {
                None => Finding::NoServiceAccount {
                    namespace: workload.namespace.clone(),
                    name: workload.service_account.clone(),
                },
                Some((account, origin)) => {
                    let pod = document
                        .value
                        .pointer(&workload.pod_pointer)
                        .cloned()
                        .unwrap_or(Value::Null);
                    match plan_pod(context.settings, &workload, &pod, account)? {
                        Err(denial) => Finding::Denied(denial),
                        Ok((ops, plan)) => {
                            apply(document, &ops)?;
                            let mut injection = Injection {
                                operations: ops.len(),
                                origin: origin.clone(),
                                warnings: plan.warnings.clone(),
                                plan,
                                rbac: RbacStatus::NotApplicable,
                            };
                            rbac_finding(context, &workload, &mut injection);
                            if !ops.is_empty() {
                                match patches.last_mut() {
                                    Some((index, all)) if *index == workload.document => {
                                        all.extend(ops)
                                    }
                                    _ => patches.push((workload.document, ops)),
                                }
                            }
                            Finding::Injected(Box::new(injection))
                        }
                    }
                }
            }
        };
        reports.push(Report {
            location,
            workload,
            finding,
        });
    }
    Ok(Processed {
        documents,
        patches,
        reports,
    })
}

/// Patch operations (re-rooted at the pod) and the webhook's plan.
type Planned = (Vec<Value>, Plan);

/// The core's operations, re-rooted at the pod's place in the document. The outer `Result` is an
/// input problem, the inner one the webhook's verdict.
fn plan_pod(
    settings: &Settings,
    workload: &Workload,
    pod: &Value,
    account: &crate::mutate::service_account::ServiceAccountMeta,
) -> Result<Result<Planned, Denial>, InjectError> {
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
    // Offline there is no API server to ask: classic sidecars, which every version runs.
    let plan = match mutate::plan(settings, Runtime::default(), &view, account) {
        Ok(plan) => plan,
        Err(denial) => return Ok(Err(denial)),
    };
    if plan.ops.is_empty() {
        ops.clear();
    }
    let planned: Value =
        serde_json::from_slice(&patch::to_json(&plan.ops)).map_err(|e| InjectError::Internal {
            message: e.to_string(),
        })?;
    ops.extend(planned.as_array().cloned().unwrap_or_default());
    let mut ops = Value::Array(ops);
    workloads::reroot(&mut ops, &workload.pod_pointer);
    let ops = match ops {
        Value::Array(ops) => ops,
        _ => Vec::new(),
    };
    Ok(Ok((ops, plan)))
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

/// The identity-binding permission for every client ID the containers present, checked against
/// the input's RBAC objects when there are any, and judged by the webhook's own verdict rules (as
/// with the default `--rbac-check=deny`). Only what is in the input counts, so a refusal becomes
/// a warning: the cluster may well grant it already.
fn rbac_finding(context: &Context<'_>, workload: &Workload, injection: &mut Injection) {
    let plan = &injection.plan;
    if !plan.identity.identity_binding {
        return;
    }
    let (namespace, account) = (&workload.namespace, &workload.service_account);
    let grants: Vec<(String, Option<String>)> = plan
        .client_ids
        .ids
        .iter()
        .map(|id| (id.clone(), context.rbac.grant(namespace, account, id)))
        .collect();
    let checked = !context.rbac.is_empty();
    // With no RBAC objects in the input, only what needs no answer is judged (no client ID at all,
    // `valueFrom` client IDs).
    let checks: Vec<CheckReport> = if checked {
        grants
            .iter()
            .map(|(id, grant)| {
                let decision = AccessDecision {
                    allowed: grant.is_some(),
                    reason: String::new(),
                };
                CheckReport::offline(id, decision)
            })
            .collect()
    } else {
        Vec::new()
    };
    let verdict = authz::decision::verdict(
        RbacCheck::Deny,
        namespace,
        account,
        &plan.client_ids,
        &checks,
    );
    match verdict {
        Verdict::Allow => {}
        Verdict::AllowWithWarnings(warnings) => injection.warnings.extend(warnings),
        Verdict::Deny(denial) => {
            // `inject` has no --rbac-check of its own: the flag named is the webhook's.
            let condition = match denial.reason {
                DenyReason::MissingClientId => "unless run with --rbac-check=off",
                _ => "with its default --rbac-check=deny, unless the cluster already grants it",
            };
            injection.warnings.push(format!(
                "the webhook ({condition}) would reject the pod: {}",
                denial.message
            ));
            for (id, grant) in &grants {
                if grant.is_none() {
                    injection
                        .warnings
                        .extend(context.rbac.namespaced_only(namespace, account, id));
                }
            }
        }
    }
    injection.rbac = if checked {
        RbacStatus::Checked(grants)
    } else {
        RbacStatus::NotChecked
    };
}
