//! Turns the per-client-ID answers into an admission verdict. Pure: no I/O, no clock.
//!
//! `deny` refuses (403 at the HTTP edge) when a client ID is not granted (naming the ClusterRole rule that would
//! grant it) and (500) when the API server could not be asked; `warn` admits and says the same
//! things as warnings; `off` never gets here. A container whose `AZURE_CLIENT_ID` comes from a
//! `valueFrom` cannot be checked: that is a warning in both modes. An identity-binding pod with no
//! client ID anywhere is a configuration error (400) in both modes: it could never get a token.

use crate::mutate::client_ids::ClientIds;
use crate::mutate::denial::{Denial, DenyReason};
use crate::mutate::names::{CLIENT_ID_ANNOTATION, ENV_CLIENT_ID};
use crate::mutate::settings::RbacCheck;

use super::access_review::{API_GROUP, VERB};
use super::CheckReport;

/// What to do with the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    AllowWithWarnings(Vec<String>),
    Deny(Denial),
}

/// The verdict for a pod whose containers present `ids`, given one report per entry of `ids.ids`.
pub fn verdict(
    mode: RbacCheck,
    namespace: &str,
    service_account: &str,
    ids: &ClientIds,
    checks: &[CheckReport],
) -> Verdict {
    if mode == RbacCheck::Off {
        return Verdict::Allow;
    }
    if ids.ids.is_empty() && ids.unresolvable.is_empty() {
        return Verdict::Deny(Denial::new(
            DenyReason::MissingClientId,
            missing_client_id_message(namespace, service_account),
        ));
    }
    let mut denied = Vec::new();
    let mut failed = Vec::new();
    for check in checks {
        match &check.result {
            Ok(decision) if decision.allowed => {}
            Ok(decision) => denied.push(not_authorized_message(
                namespace,
                service_account,
                &check.client_id,
                &decision.reason,
            )),
            Err(error) => failed.push(check_failed_message(
                namespace,
                service_account,
                &check.client_id,
                &error.to_string(),
            )),
        }
    }
    let mut warnings = Vec::new();
    if !ids.unresolvable.is_empty() {
        warnings.push(unresolvable_message(&ids.unresolvable));
    }
    if mode == RbacCheck::Deny {
        // A definite "no" is what the user must fix; a failure would only turn into it on retry.
        if !denied.is_empty() {
            return Verdict::Deny(Denial::new(DenyReason::RbacDenied, denied.join("; ")));
        }
        if !failed.is_empty() {
            let mut message = failed.join("; ");
            message.push_str(
                ". The webhook refuses identity-binding pods it cannot authorize: retry once the \
                 API server answers, or an operator can run the webhook with --rbac-check=warn to \
                 admit such pods with a warning",
            );
            return Verdict::Deny(Denial::new(DenyReason::RbacUnavailable, message));
        }
    } else {
        warnings.extend(denied);
        warnings.extend(failed);
    }
    if warnings.is_empty() {
        Verdict::Allow
    } else {
        Verdict::AllowWithWarnings(warnings)
    }
}

fn subject(namespace: &str, service_account: &str) -> String {
    format!("system:serviceaccount:{namespace}:{service_account}")
}

fn missing_client_id_message(namespace: &str, service_account: &str) -> String {
    format!(
        "the pod requests identity binding but no client ID is set: annotate service account \
         {namespace}/{service_account} with {CLIENT_ID_ANNOTATION}, or set {ENV_CLIENT_ID} in the \
         pod's containers"
    )
}

fn not_authorized_message(
    namespace: &str,
    service_account: &str,
    client_id: &str,
    reason: &str,
) -> String {
    let mut message = format!(
        "service account {namespace}/{service_account} may not use managed identity {client_id}: \
         grant it with a ClusterRole rule {{apiGroups: [\"{API_GROUP}\"], resources: \
         [\"{client_id}\"], verbs: [\"{VERB}\"]}} bound by a ClusterRoleBinding to {}",
        subject(namespace, service_account)
    );
    if !reason.is_empty() {
        message.push_str(&format!(" (authorizer: {reason})"));
    }
    message
}

fn check_failed_message(
    namespace: &str,
    service_account: &str,
    client_id: &str,
    error: &str,
) -> String {
    format!(
        "could not ask the API server whether service account {namespace}/{service_account} may \
         use managed identity {client_id} (SubjectAccessReview failed: {error})"
    )
}

fn unresolvable_message(containers: &[String]) -> String {
    format!(
        "{ENV_CLIENT_ID} of container(s) {} comes from valueFrom, which the webhook cannot resolve: \
         the identity it names was not checked against RBAC",
        containers.join(", ")
    )
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
