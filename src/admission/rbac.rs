//! The identity-binding RBAC step of a review: which client IDs the pod will present, whether its
//! service account may use them, and what that means for the answer.

use std::sync::Arc;
use std::time::Instant;

use crate::mutate::settings::RbacCheck;
use crate::k8s::authz::{self, CachedAuthorizer, DenialKind, Verdict};
use crate::mutate::service_account::ServiceAccountMeta;
use crate::metrics::{Metrics, RbacResult};
use crate::mutate::client_ids::identity_binding_client_ids;
use crate::mutate::view::PodView;
use crate::mutate::settings::Settings;

use super::outcome::DenyReason;

/// The RBAC check as configured by `--rbac-check`.
#[derive(Clone)]
pub struct RbacStep {
    pub authorizer: Arc<CachedAuthorizer>,
    pub mode: RbacCheck,
}

/// A refusal from the RBAC step.
pub struct RbacDenial {
    pub reason: DenyReason,
    pub code: u16,
    pub message: String,
}

impl RbacStep {
    /// Warnings to add to an admitted pod, or the denial. Pods without identity binding pass.
    pub async fn check(
        &self,
        settings: &Settings,
        pod: &PodView<'_>,
        sa: &ServiceAccountMeta,
        deadline: Instant,
        metrics: &Metrics,
    ) -> Result<Vec<String>, RbacDenial> {
        if self.mode == RbacCheck::Off {
            return Ok(Vec::new());
        }
        let ids = match identity_binding_client_ids(settings, pod, sa) {
            Ok(None) => return Ok(Vec::new()),
            Ok(Some(ids)) => ids,
            Err(rejection) => {
                return Err(RbacDenial {
                    reason: DenyReason::InvalidPod,
                    code: rejection.code,
                    message: rejection.message,
                })
            }
        };
        let result = authz::authorize_pod(
            &self.authorizer,
            self.mode,
            &sa.namespace,
            &sa.name,
            &ids,
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
            Verdict::Deny {
                code,
                message,
                kind,
            } => Err(RbacDenial {
                reason: match kind {
                    DenialKind::MissingClientId => DenyReason::MissingClientId,
                    DenialKind::NotAuthorized => DenyReason::RbacDenied,
                    DenialKind::CheckFailed => DenyReason::RbacUnavailable,
                },
                code,
                message,
            }),
        }
    }
}
