//! Why a pod is refused: one closed set of reasons, shared by the mutation, the RBAC check, the
//! admission answer, the logs and the metrics. The HTTP status of an answer is chosen from the
//! reason at the HTTP edge (`admission::response`), not here.

/// The reason a pod is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The pod or its service account is misconfigured.
    InvalidPod,
    /// The service account does not exist.
    ServiceAccountNotFound,
    /// The API server could not be asked for the service account in time.
    ServiceAccountUnavailable,
    /// Identity binding requested but no client ID anywhere.
    MissingClientId,
    /// RBAC does not let the service account use a client ID the pod presents.
    RbacDenied,
    /// The RBAC check could not be made in time.
    RbacUnavailable,
}

impl DenyReason {
    pub const ALL: [DenyReason; 6] = [
        DenyReason::InvalidPod,
        DenyReason::ServiceAccountNotFound,
        DenyReason::ServiceAccountUnavailable,
        DenyReason::MissingClientId,
        DenyReason::RbacDenied,
        DenyReason::RbacUnavailable,
    ];

    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::InvalidPod => "invalid_pod",
            DenyReason::ServiceAccountNotFound => "service_account_not_found",
            DenyReason::ServiceAccountUnavailable => "service_account_unavailable",
            DenyReason::MissingClientId => "missing_client_id",
            DenyReason::RbacDenied => "rbac_denied",
            DenyReason::RbacUnavailable => "rbac_unavailable",
        }
    }
}

/// A refused pod: the reason, and a message telling its owner what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denial {
    pub reason: DenyReason,
    pub message: String,
}

impl Denial {
    pub fn new(reason: DenyReason, message: impl Into<String>) -> Self {
        Denial {
            reason,
            message: message.into(),
        }
    }

    /// The pod or its service account is misconfigured.
    pub fn invalid_pod(message: impl Into<String>) -> Self {
        Denial::new(DenyReason::InvalidPod, message)
    }
}

#[cfg(test)]
mod tests {
    use super::DenyReason;

    /// The labels are part of the metrics and log contract.
    #[test]
    fn reasons_have_stable_labels() {
        let labels: Vec<&str> = DenyReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(
            labels,
            [
                "invalid_pod",
                "service_account_not_found",
                "service_account_unavailable",
                "missing_client_id",
                "rbac_denied",
                "rbac_unavailable"
            ]
        );
    }
}
