//! Identity-binding authorisation: may this service account use that managed identity?
//!
//! AKS identity binding lets a pod exchange its service-account token for a managed identity's token,
//! so the webhook must not hand an identity to a service account that RBAC does not allow to use it.
//! The question is asked with a SubjectAccessReview per client ID (see [`access_review`] for the exact
//! fields), answered through a TTL cache with single-flight ([`cache`]), and turned into an admission
//! verdict by a pure function ([`decision`]). [`authorize_pod`] ties the three together for the
//! admission handler.

pub mod access_review;
pub mod cache;
pub mod decision;

use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;

use crate::mutate::client_ids::ClientIds;
use crate::mutate::settings::RbacCheck;
use futures::future::BoxFuture;

pub use access_review::SubjectAccessReviews;
pub use cache::{CacheConfig, CachedAuthorizer, CheckReport};
pub use decision::Verdict;

/// The API server's answer for one (service account, client ID) pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessDecision {
    pub allowed: bool,
    /// The authorizer's explanation (often empty for RBAC), plus any evaluation error.
    pub reason: String,
}

/// Why no answer was obtained. Clone, because one failed call is reported to every waiter on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzError {
    /// No answer before the deadline.
    #[error("no answer from the API server within {waited_ms} ms")]
    Timeout { waited_ms: u64 },
    /// The request failed: connection refused, TLS, an error status from the API server.
    #[error("{reason}")]
    Unavailable { reason: String },
}

/// Asks whether `system:serviceaccount:<namespace>:<service_account>` may use managed identity
/// `client_id`. Behind a trait so the admission handler can be tested with in-memory fakes.
pub trait Authorizer: Send + Sync + 'static {
    fn check<'a>(
        &'a self,
        namespace: &'a str,
        service_account: &'a str,
        client_id: &'a str,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<AccessDecision, AuthzError>>;
}

/// Everything the handler needs from one pod's RBAC check: the verdict to apply and one report per
/// client ID checked (for `azwi_rbac_checks_total` / `azwi_rbac_check_duration_seconds` and logs).
#[derive(Debug, Clone, PartialEq)]
pub struct PodAuthorization {
    pub verdict: Verdict,
    pub checks: Vec<CheckReport>,
}

/// Runs the RBAC check for an identity-binding pod whose containers present `ids` (see
/// `mutate::client_ids::identity_binding_client_ids`). `off` makes no call; a pod with no client ID
/// at all is refused before any call; the client IDs are checked concurrently, each bounded by
/// `deadline`.
pub async fn authorize_pod(
    authorizer: &CachedAuthorizer,
    mode: RbacCheck,
    namespace: &str,
    service_account: &str,
    ids: &ClientIds,
    deadline: Instant,
) -> PodAuthorization {
    if mode == RbacCheck::Off {
        return PodAuthorization {
            verdict: Verdict::Allow,
            checks: Vec::new(),
        };
    }
    let checks = if ids.ids.is_empty() {
        Vec::new()
    } else {
        join_all(
            ids.ids
                .iter()
                .map(|id| authorizer.check(namespace, service_account, id, deadline)),
        )
        .await
    };
    let verdict = decision::verdict(mode, namespace, service_account, ids, &checks);
    PodAuthorization { verdict, checks }
}

/// Milliseconds for messages, saturating instead of truncating silently.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
