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
    /// The server refused the body before the handler saw it: over the size limit (413).
    BodyTooLarge,
    /// The server refused the body before the handler saw it: not received in time (408).
    BodyTimeout,
    /// The handler panicked; the server refused the pod for it (500).
    HandlerPanicked,
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
    pub const ALL: [Outcome; 14] = [
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
        Outcome::BodyTooLarge,
        Outcome::BodyTimeout,
        Outcome::HandlerPanicked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Mutated => "mutated",
            Outcome::Unchanged => "unchanged",
            Outcome::Ignored => "ignored",
            Outcome::Denied(_) | Outcome::HandlerPanicked => "denied",
            // Bodies refused unread were not usable AdmissionReviews either; the reason says why.
            Outcome::Malformed | Outcome::BodyTooLarge | Outcome::BodyTimeout => "malformed",
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
            Outcome::BodyTooLarge => "body_too_large",
            Outcome::BodyTimeout => "body_timeout",
            Outcome::HandlerPanicked => "handler_panicked",
            Outcome::Mutated | Outcome::Unchanged | Outcome::Ignored => "none",
        }
    }
}
