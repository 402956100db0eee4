//! The HTTP boundary of the webhook: decode the AdmissionReview, look up the service account, call
//! the pure mutation core, write the response envelope. No business rules live here.

mod handler;
pub mod rbac;
pub mod response;
mod scratch;
pub mod wire;

pub use handler::{refusal_reply, Admitter};

#[cfg(test)]
mod tests;
