//! `--explain`: per pod or pod template, what would be injected, or why not.

use std::fmt::Write;

use super::process::{Finding, Injection, RbacStatus, Report};
use super::webhook_config::WebhookConfig;
use crate::mutate::names::{
    INJECT_PROXY_ANNOTATION, MOUNT_PATH, PROXY_CONTAINER, PROXY_INIT_CONTAINER,
    SKIP_CONTAINERS_ANNOTATION,
};

/// `webhook` is the configuration applied (`None` with `--all`).
pub fn render(webhook: Option<&WebhookConfig>, reports: &[Report]) -> String {
    let mut out = String::new();
    match webhook {
        Some(webhook) => {
            let _ = writeln!(out, "webhook configuration: {}", webhook.describe());
            if webhook.match_conditions > 0 {
                let _ = writeln!(out, "  note: {}", unevaluated_conditions(webhook));
            }
        }
        None => out.push_str("webhook configuration: not applied (--all)\n"),
    }
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
        match &report.finding {
            Finding::NotSent(not_sent) => {
                let _ = writeln!(
                    out,
                    "  not injected: {not_sent}, so the API server does not call the webhook for \
                     the {what} (--all injects anyway)"
                );
            }
            Finding::NoServiceAccount { namespace, name } => {
                let _ = writeln!(
                    out,
                    "  not injected: service account {namespace}/{name} is not in the input, a \
                     --service-account file or (with --from-cluster) the cluster; the webhook would \
                     reject the pod"
                );
            }
            Finding::Denied(denial) => {
                let _ = writeln!(
                    out,
                    "  not injected: the webhook would reject the pod ({}): {}",
                    denial.reason.as_str(),
                    denial.message
                );
            }
            Finding::Injected(injection) => injected(&mut out, report, injection),
        }
    }
    out
}

/// CEL cannot be evaluated offline: the pods are judged as if every condition held.
pub fn unevaluated_conditions(webhook: &WebhookConfig) -> String {
    format!(
        "webhook {} has {} matchConditions, which are not evaluated offline: pods are judged as if \
         they all held",
        webhook.webhook, webhook.match_conditions
    )
}

fn injected(out: &mut String, report: &Report, injection: &Injection) {
    let workload = &report.workload;
    let change = if injection.operations == 0 {
        "already injected, no change".to_owned()
    } else {
        format!("{} patch operations", injection.operations)
    };
    let _ = writeln!(out, "  injected: yes ({change})");
    let plan = &injection.plan;
    let _ = writeln!(
        out,
        "  service account: {}/{} ({})",
        workload.namespace, workload.service_account, injection.origin
    );
    let identity = &plan.identity;
    let client_id = if identity.client_id.is_empty() {
        "none (AZURE_CLIENT_ID not injected)"
    } else {
        &identity.client_id
    };
    let _ = writeln!(
        out,
        "  client id: {client_id}; tenant id: {}",
        identity.tenant_id
    );
    let _ = writeln!(
        out,
        "  token: audience {}, expires after {}s, volume {} mounted at {MOUNT_PATH}",
        identity.audience, identity.token_expiration_seconds, plan.volume
    );
    if let Some(prefix) = workload.volume_prefix.as_deref() {
        let _ = writeln!(
            out,
            "    (volume named for generateName {prefix:?}; the webhook keeps it for every pod of the template)"
        );
    }
    let containers: Vec<&str> = plan.containers.iter().map(|c| c.name.as_str()).collect();
    let _ = writeln!(out, "  containers: {}", list(&containers));
    if !plan.skipped.is_empty() {
        let _ = writeln!(
            out,
            "  skipped: {} ({SKIP_CONTAINERS_ANNOTATION})",
            list(&plan.skipped)
        );
    }
    let _ = writeln!(out, "  env: {}", list(&plan.env));
    if plan.proxy {
        let _ = writeln!(
            out,
            "  proxy sidecar: {PROXY_CONTAINER} and {PROXY_INIT_CONTAINER} ({INJECT_PROXY_ANNOTATION})"
        );
    }
    let binding = match &injection.rbac {
        _ if !identity.identity_binding => "no".to_owned(),
        RbacStatus::NotApplicable => "yes".to_owned(),
        RbacStatus::NotChecked => {
            "yes; RBAC not checked (no roles or bindings in the input)".to_owned()
        }
        RbacStatus::Checked(grants) => {
            let each: Vec<String> = grants
                .iter()
                .map(|(id, grant)| match grant {
                    Some(by) => format!("{id} granted by {by}"),
                    None => format!("{id}: nothing in the input grants it"),
                })
                .collect();
            format!("yes; RBAC: {}", list(&each))
        }
    };
    let _ = writeln!(out, "  identity binding: {binding}");
    for warning in &injection.warnings {
        let _ = writeln!(out, "  warning: {warning}");
    }
}

fn list<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
        items.join(", ")
    }
}
