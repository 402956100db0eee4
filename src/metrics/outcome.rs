//! How a review ended, as a closed set: used for logs and metric labels.

use crate::mutate::denial::DenyReason;

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
            Outcome::Denied(reason) => reason.as_str(),
            Outcome::Malformed => "malformed_review",
            Outcome::Shed => "too_many_in_flight",
            Outcome::BodyTooLarge => "body_too_large",
            Outcome::BodyTimeout => "body_timeout",
            Outcome::HandlerPanicked => "handler_panicked",
            Outcome::Mutated | Outcome::Unchanged | Outcome::Ignored => "none",
        }
    }
}
