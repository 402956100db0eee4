//! Service-account lookup behind a small trait, so the admission path is testable with in-memory fakes.

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::mutate::service_account::ServiceAccountMeta;

/// Why a service account could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The service account does not exist (a pod configuration error: 400).
    #[error("service account {namespace}/{name} not found")]
    NotFound { namespace: String, name: String },
    /// The API server could not answer (transient: 500).
    #[error("reading service account {namespace}/{name} from the API server failed: {reason}")]
    Unavailable {
        namespace: String,
        name: String,
        reason: String,
    },
}

/// Finds a service account by namespace and name.
pub trait ServiceAccounts: Send + Sync + 'static {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<ServiceAccountMeta>, LookupError>>;
}
