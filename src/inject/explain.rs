//! `--explain`: per pod or pod template, what would be injected, or why not.

use std::fmt::Write;

use super::process::{Decision, Injection, RbacStatus, Report};
use crate::mutate::names::{MOUNT_PATH, USE_LABEL};

pub fn render(reports: &[Report]) -> String {
    let mut out = String::new();
    if reports.is_empty() {
        out.push_str("no pods or pod templates in the input\n");
    }
    for report in reports {
        let workload = &report.workload;
        let template = if workload.volume_prefix.is_some() {
            " (pod template)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{}: {}{template}",
            report.location,
            workload.describe()
        );
        let what = if template.is_empty() {
            "pod"
        } else {
            "pod template"
        };
        match &report.decision {
            Decision::NotSelected => {
                let _ = writeln!(
                    out,
                    "  not injected: the {what} has no label {USE_LABEL}: \"true\", so the webhook is not \
                     called for it (--all injects anyway)"
                );
            }
            Decision::NoServiceAccount { namespace, name } => {
                let _ = writeln!(
                    out,
                    "  not injected: service account {namespace}/{name} is not in the input, a \
                     --service-account file or (with --from-cluster) the cluster; the webhook would \
                     reject the pod"
                );
            }
            Decision::Denied(rejection) => {
                let _ = writeln!(
                    out,
                    "  not injected: the webhook would reject the pod ({}): {}",
                    rejection.code, rejection.message
                );
            }
            Decision::Injected(injection) => injected(&mut out, report, injection),
        }
    }
    out
}

fn injected(out: &mut String, report: &Report, injection: &Injection) {
    let workload = &report.workload;
    let change = if injection.operations == 0 {
        "already injected, no change".to_owned()
    } else {
        format!("{} patch operations", injection.operations)
    };
    let _ = writeln!(out, "  injected: yes ({change})");
    let origin = injection
        .origin
        .as_ref()
        .map(|o| format!(" ({o})"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  service account: {}/{}{origin}",
        workload.namespace, workload.service_account
    );
    let client_id = if injection.client_id.is_empty() {
        "none (AZURE_CLIENT_ID not injected)"
    } else {
        &injection.client_id
    };
    let _ = writeln!(
        out,
        "  client id: {client_id}; tenant id: {}",
        injection.tenant_id
    );
    let expiration = injection
        .expiration_seconds
        .map(|s| format!(", expires after {s}s"))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  token: audience {}{expiration}, volume {} mounted at {MOUNT_PATH}",
        injection.audience, injection.volume
    );
    if let Some(prefix) = workload.volume_prefix.as_deref() {
        let _ = writeln!(
            out,
            "    (volume named for generateName {prefix:?}; the webhook keeps it for every pod of the template)"
        );
    }
    let _ = writeln!(out, "  containers: {}", list(&injection.containers));
    let _ = writeln!(out, "  env: {}", list(&injection.env));
    let binding = match &injection.rbac {
        _ if !injection.identity_binding => "no".to_owned(),
        RbacStatus::NotApplicable => "yes".to_owned(),
        RbacStatus::NotChecked => {
            "yes; RBAC not checked (no roles or bindings in the input)".to_owned()
        }
        RbacStatus::Granted(by) => format!("yes; RBAC granted by {by}"),
        RbacStatus::Missing => "yes; RBAC: nothing in the input grants it".to_owned(),
    };
    let _ = writeln!(out, "  identity binding: {binding}");
    for warning in &injection.warnings {
        let _ = writeln!(out, "  warning: {warning}");
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}
