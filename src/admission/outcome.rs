//! How a review ended, as a closed set: used for logs and metric labels.

/// The result of one review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A patch was returned.
    Mutated,
    /// A pod that needed no change.
    Unchanged,
    /// Not a pod CREATE: admitted untouched.
    Ignored,
    /// The pod was refused; the reason says why.
    Denied(DenyReason),
    /// The body was not a usable AdmissionReview.
    Malformed,
    /// Refused unread because too many reviews were in flight (429).
    Shed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// The pod or its service account is misconfigured (400).
    InvalidPod,
    /// The service account does not exist (400).
    ServiceAccountNotFound,
    /// The API server could not be asked in time (500).
    ServiceAccountUnavailable,
    /// Identity binding requested but no client ID anywhere (400).
    MissingClientId,
    /// RBAC does not let the service account use the client ID (403).
    RbacDenied,
    /// The RBAC check could not be made in time (500).
    RbacUnavailable,
}

impl Outcome {
    /// Every outcome, so metrics can create one series per (outcome, reason) up front.
    pub const ALL: [Outcome; 11] = [
        Outcome::Mutated,
        Outcome::Unchanged,
        Outcome::Ignored,
        Outcome::Denied(DenyReason::InvalidPod),
        Outcome::Denied(DenyReason::ServiceAccountNotFound),
        Outcome::Denied(DenyReason::ServiceAccountUnavailable),
        Outcome::Denied(DenyReason::MissingClientId),
        Outcome::Denied(DenyReason::RbacDenied),
        Outcome::Denied(DenyReason::RbacUnavailable),
        Outcome::Malformed,
        Outcome::Shed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Mutated => "mutated",
            Outcome::Unchanged => "unchanged",
            Outcome::Ignored => "ignored",
            Outcome::Denied(_) => "denied",
            Outcome::Malformed => "malformed",
            Outcome::Shed => "shed",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Outcome::Denied(DenyReason::InvalidPod) => "invalid_pod",
            Outcome::Denied(DenyReason::ServiceAccountNotFound) => "service_account_not_found",
            Outcome::Denied(DenyReason::ServiceAccountUnavailable) => "service_account_unavailable",
            Outcome::Denied(DenyReason::MissingClientId) => "missing_client_id",
            Outcome::Denied(DenyReason::RbacDenied) => "rbac_denied",
            Outcome::Denied(DenyReason::RbacUnavailable) => "rbac_unavailable",
            Outcome::Malformed => "malformed_review",
            Outcome::Shed => "too_many_in_flight",
            Outcome::Mutated | Outcome::Unchanged | Outcome::Ignored => "none",
        }
    }
}
