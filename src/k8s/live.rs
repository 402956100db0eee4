//! Service-account lookup with one live, metadata-only GET per call.
//!
//! This is the fallback behind the (later) reflector cache: a service account created a moment before
//! the pod is not in the cache yet, so a miss must still ask the API server. Metadata only, because the
//! webhook reads annotations and nothing else (no secrets list, no managedFields).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Api, Client};

use super::errors::short_reason;
#[cfg(test)]
use super::errors::MAX_REASON_LEN;
use super::service_accounts::{LookupError, ServiceAccounts};
use crate::mutate::service_account::ServiceAccountMeta;
use futures::future::BoxFuture;

/// Default limit on one lookup, well inside the API server's 10 s admission budget.
pub const DEFAULT_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads service accounts straight from the API server.
#[derive(Clone)]
pub struct LiveServiceAccounts {
    client: Client,
    timeout: Duration,
}

impl LiveServiceAccounts {
    /// Uses `client` (built with [`super::client::ClientOptions::for_requests`]) and the default timeout.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            timeout: DEFAULT_LOOKUP_TIMEOUT,
        }
    }

    /// Overrides the per-lookup deadline; enforced here as well as by the client's own timeouts, so a
    /// client built without timeouts still cannot hang an admission request.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// One GET of `namespace/name` with the `PartialObjectMetadata` Accept header.
    pub async fn fetch(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<ServiceAccountMeta, LookupError> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        let unavailable = |reason: String| LookupError::Unavailable {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            reason,
        };
        match tokio::time::timeout(self.timeout, api.get_metadata(name)).await {
            Err(_) => Err(unavailable(format!(
                "no answer from the API server within {:?}",
                self.timeout
            ))),
            Ok(Ok(partial)) => Ok(service_account_meta(namespace, name, partial.metadata)),
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => Err(LookupError::NotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }),
            Ok(Err(error)) => Err(unavailable(short_reason(&error))),
        }
    }
}

impl ServiceAccounts for LiveServiceAccounts {
    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Arc<ServiceAccountMeta>, LookupError>> {
        Box::pin(async move { self.fetch(namespace, name).await.map(Arc::new) })
    }
}

/// Keeps only what the webhook reads from a service account's metadata (shared with the cache).
pub fn service_account_meta(
    namespace: &str,
    name: &str,
    metadata: ObjectMeta,
) -> ServiceAccountMeta {
    ServiceAccountMeta {
        namespace: metadata.namespace.unwrap_or_else(|| namespace.to_owned()),
        name: metadata.name.unwrap_or_else(|| name.to_owned()),
        annotations: metadata.annotations.unwrap_or_default().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    #[test]
    fn api_status_reason_names_code_reason_and_message() {
        let error = kube::Error::Api(
            Status::failure("etcd is sad", "InternalError")
                .with_code(500)
                .boxed(),
        );
        assert_eq!(
            short_reason(&error),
            "API server answered 500 InternalError: etcd is sad"
        );
    }

    #[test]
    fn long_reasons_are_cut() {
        let error = kube::Error::Api(
            Status::failure(&"é".repeat(500), "X")
                .with_code(500)
                .boxed(),
        );
        let reason = short_reason(&error);
        assert!(reason.len() <= MAX_REASON_LEN + '…'.len_utf8());
        assert!(reason.ends_with('…'));
    }

    #[test]
    fn metadata_keeps_annotations_only() {
        let metadata = ObjectMeta {
            name: Some("sa".into()),
            namespace: Some("ns".into()),
            annotations: Some([("a".to_owned(), "b".to_owned())].into()),
            labels: Some([("l".to_owned(), "v".to_owned())].into()),
            ..ObjectMeta::default()
        };
        let meta = service_account_meta("ns", "sa", metadata);
        assert_eq!(meta.namespace, "ns");
        assert_eq!(meta.name, "sa");
        assert_eq!(meta.annotations.get("a"), Some("b"));
    }
}
