//! The seam between the HTTP server and the admission logic: the server hands over the request body
//! and the API server's budget, and writes back whatever status and body it gets. Requests the
//! server refuses itself are handed over too, so that the admission side writes (and counts) every
//! answer: the server knows HTTP, not AdmissionReviews.

use std::time::Duration;

use futures::future::BoxFuture;

/// HTTP status and JSON body answering one `POST /mutate-v1-pod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewReply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why the server answered a request without the handler's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many reviews in flight: refused before the body was read (429).
    Shed,
    /// The body is over the size limit (413).
    BodyTooLarge,
    /// The body did not arrive in time (408).
    BodyTimeout,
    /// The body could not be read: the stream broke off (400).
    BodyUnreadable,
    /// The handler panicked (500).
    HandlerPanicked,
}

impl Refusal {
    /// The HTTP status of the answer.
    pub fn status(self) -> u16 {
        match self {
            Refusal::Shed => 429,
            Refusal::BodyTooLarge => 413,
            Refusal::BodyTimeout => 408,
            Refusal::BodyUnreadable => 400,
            Refusal::HandlerPanicked => 500,
        }
    }
}

/// Answers one AdmissionReview request body.
pub trait ReviewHandler: Send + Sync + 'static {
    /// `budget` is what is left of the API server's `?timeout=` for this call once the body has
    /// been read, when it sent one.
    fn review(&self, body: bytes::Bytes, budget: Option<Duration>) -> BoxFuture<'_, ReviewReply>;

    /// The answer to a request the server refuses itself, `message` saying why; called once per
    /// such request (so it may count them).
    fn refuse(&self, refusal: Refusal, message: &str) -> ReviewReply;
}
