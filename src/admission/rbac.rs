//! The identity-binding RBAC step of a review: whether the pod's service account may use the client
//! IDs its containers will present (as the plan found them), and what that means for the answer.

use std::sync::Arc;
use std::time::Instant;

use crate::k8s::authz::{self, CachedAuthorizer, Verdict};
use crate::metrics::{Metrics, RbacResult};
use crate::mutate::denial::Denial;
use crate::mutate::service_account::ServiceAccountMeta;
use crate::mutate::settings::RbacCheck;
use crate::mutate::Plan;

/// The RBAC check as configured by `--rbac-check`.
#[derive(Clone)]
pub struct RbacStep {
    pub authorizer: Arc<CachedAuthorizer>,
    pub mode: RbacCheck,
}

impl RbacStep {
    /// Whether the pod needs the check: an identity-binding pod, with the check on.
    pub fn applies(&self, plan: &Plan) -> bool {
        self.mode != RbacCheck::Off && plan.identity.identity_binding
    }

    /// Warnings to add to an admitted pod, or the denial. Pods without identity binding pass.
    pub async fn check(
        &self,
        plan: &Plan,
        sa: &ServiceAccountMeta,
        deadline: Instant,
        metrics: &Metrics,
    ) -> Result<Vec<String>, Denial> {
        if !self.applies(plan) {
            return Ok(Vec::new());
        }
        let result = authz::authorize_pod(
            &self.authorizer,
            self.mode,
            &sa.namespace,
            &sa.name,
            &plan.client_ids,
            tokio::time::Instant::from_std(deadline),
        )
        .await;
        for check in &result.checks {
            let outcome = match &check.result {
                Ok(decision) if decision.allowed => RbacResult::Allowed,
                Ok(_) => RbacResult::Denied,
                Err(_) => RbacResult::Error,
            };
            // A check that joined another's call made no API call of its own.
            metrics.record_rbac_check(outcome, check.cached || check.coalesced);
            if !check.cached && !check.coalesced {
                metrics.observe_rbac_check_duration(check.duration);
            }
        }
        match result.verdict {
            Verdict::Allow => Ok(Vec::new()),
            Verdict::AllowWithWarnings(warnings) => Ok(warnings),
            Verdict::Deny(denial) => Err(denial),
        }
    }
}
