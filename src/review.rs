//! The seam between the HTTP server and the admission logic: the server hands over the request body
//! and the API server's budget, and writes back whatever status and body it gets.

use std::time::Duration;

use futures::future::BoxFuture;

/// HTTP status and JSON body answering one `POST /mutate-v1-pod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewReply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Answers one AdmissionReview request body.
pub trait ReviewHandler: Send + Sync + 'static {
    /// `budget` is what is left of the API server's `?timeout=` for this call once the body has
    /// been read, when it sent one.
    fn review(&self, body: bytes::Bytes, budget: Option<Duration>) -> BoxFuture<'_, ReviewReply>;
}
