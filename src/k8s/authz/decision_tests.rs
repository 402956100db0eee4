use std::time::Duration;

use super::*;
use crate::k8s::authz::{AccessDecision, AuthzError};

fn ids(ids: &[&str], unresolvable: &[&str]) -> ClientIds {
    ClientIds {
        ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        unresolvable: unresolvable.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn report(client_id: &str, result: Result<AccessDecision, AuthzError>) -> CheckReport {
    CheckReport {
        client_id: client_id.to_owned(),
        result,
        cached: false,
        coalesced: false,
        duration: Duration::ZERO,
    }
}

fn allowed(client_id: &str) -> CheckReport {
    report(
        client_id,
        Ok(AccessDecision {
            allowed: true,
            reason: String::new(),
        }),
    )
}

fn denied(client_id: &str, reason: &str) -> CheckReport {
    report(
        client_id,
        Ok(AccessDecision {
            allowed: false,
            reason: reason.to_owned(),
        }),
    )
}

fn failed(client_id: &str) -> CheckReport {
    report(
        client_id,
        Err(AuthzError::Unavailable {
            reason: "connection refused".into(),
        }),
    )
}

fn decide(mode: RbacCheck, ids: &ClientIds, checks: &[CheckReport]) -> Verdict {
    verdict(mode, "apps", "web", ids, checks)
}

fn denial(verdict: Verdict) -> (DenyReason, String) {
    match verdict {
        Verdict::Deny(denial) => (denial.reason, denial.message),
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn warnings(verdict: Verdict) -> Vec<String> {
    match verdict {
        Verdict::AllowWithWarnings(warnings) => warnings,
        other => panic!("expected warnings, got {other:?}"),
    }
}

#[test]
fn all_allowed_is_admitted_in_every_mode() {
    let ids = ids(&["a", "b"], &[]);
    let checks = [allowed("a"), allowed("b")];
    for mode in [RbacCheck::Deny, RbacCheck::Warn, RbacCheck::Off] {
        assert_eq!(decide(mode, &ids, &checks), Verdict::Allow);
    }
}

#[test]
fn deny_mode_refuses_an_unauthorised_client_id_with_403_naming_the_rule() {
    let checks = [allowed("a"), denied("b", "no RBAC policy matched")];
    let (reason, message) = denial(decide(RbacCheck::Deny, &ids(&["a", "b"], &[]), &checks));
    assert_eq!(reason, DenyReason::RbacDenied);
    assert_eq!(
        message,
        "service account apps/web may not use managed identity b: grant it with a ClusterRole rule \
         {apiGroups: [\"cid.wi.aks.azure.com\"], resources: [\"b\"], verbs: [\"use-managed-identity\"]} \
         bound by a ClusterRoleBinding to system:serviceaccount:apps:web (authorizer: no RBAC policy matched)"
    );
}

#[test]
fn warn_mode_admits_with_the_same_text_as_a_warning() {
    let ids = ids(&["b"], &[]);
    let checks = [denied("b", "")];
    let (_, message) = denial(decide(RbacCheck::Deny, &ids, &checks));
    assert_eq!(warnings(decide(RbacCheck::Warn, &ids, &checks)), [message]);
}

#[test]
fn failed_checks_are_500_in_deny_mode_and_warnings_in_warn_mode() {
    let ids = ids(&["a"], &[]);
    let checks = [failed("a")];
    let (reason, message) = denial(decide(RbacCheck::Deny, &ids, &checks));
    assert_eq!(reason, DenyReason::RbacUnavailable);
    assert!(
        message.contains("could not ask the API server"),
        "{message}"
    );
    assert!(
        message.contains("apps/web") && message.contains(" a "),
        "{message}"
    );
    assert!(message.contains("connection refused"), "{message}");
    assert!(message.contains("--rbac-check=warn"), "{message}");
    let warned = warnings(decide(RbacCheck::Warn, &ids, &checks));
    assert_eq!(warned.len(), 1);
    assert!(warned[0].contains("connection refused"));
}

#[test]
fn a_denial_wins_over_a_failure() {
    let checks = [failed("a"), denied("b", "")];
    let (reason, _) = denial(decide(RbacCheck::Deny, &ids(&["a", "b"], &[]), &checks));
    assert_eq!(reason, DenyReason::RbacDenied);
}

#[test]
fn no_client_id_anywhere_is_400_naming_the_annotation() {
    for mode in [RbacCheck::Deny, RbacCheck::Warn] {
        let (reason, message) = denial(decide(mode, &ids(&[], &[]), &[]));
        assert_eq!(reason, DenyReason::MissingClientId);
        assert!(
            message.contains("azure.workload.identity/client-id"),
            "{message}"
        );
        assert!(message.contains("apps/web"), "{message}");
    }
    assert_eq!(decide(RbacCheck::Off, &ids(&[], &[]), &[]), Verdict::Allow);
}

#[test]
fn value_from_client_ids_are_a_warning_in_both_modes() {
    let only_value_from = ids(&[], &["sidecar", "app"]);
    for mode in [RbacCheck::Deny, RbacCheck::Warn] {
        let warned = warnings(decide(mode, &only_value_from, &[]));
        assert_eq!(warned.len(), 1);
        assert!(warned[0].contains("sidecar, app"), "{}", warned[0]);
        assert!(warned[0].contains("valueFrom"), "{}", warned[0]);
    }
    let mixed = ids(&["a"], &["app"]);
    assert_eq!(
        warnings(decide(RbacCheck::Deny, &mixed, &[allowed("a")])).len(),
        1
    );
}
