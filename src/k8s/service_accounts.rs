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

    /// The service account if it is at hand without waiting (a cache hit), counted as `get` would
    /// count it. The admission path asks this first, so that a hit costs no boxed future; `None`
    /// means only that `get` must be asked.
    fn ready(&self, _namespace: &str, _name: &str) -> Option<Arc<ServiceAccountMeta>> {
        None
    }
}

/// A fixed set of service accounts held in memory: for offline runs, load tools and tests.
#[derive(Debug, Default, Clone)]
pub struct InMemoryServiceAccounts {
    accounts: std::collections::HashMap<(String, String), Arc<ServiceAccountMeta>>,
}

impl FromIterator<ServiceAccountMeta> for InMemoryServiceAccounts {
    fn from_iter<I: IntoIterator<Item = ServiceAccountMeta>>(accounts: I) -> Self {
        let accounts = accounts
            .into_iter()
            .map(|sa| ((sa.namespace.clone(), sa.name.clone()), Arc::new(sa)))
            .collect();
        InMemoryServiceAccounts { accounts }
    }
}

impl ServiceAccounts for InMemoryServiceAccounts {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<ServiceAccountMeta>, LookupError>> {
        let found = self
            .accounts
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned();
        Box::pin(async move {
            found.ok_or_else(|| LookupError::NotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
        })
    }
}
