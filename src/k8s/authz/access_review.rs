//! The SubjectAccessReview itself, sent with the real kube client.
//!
//! The fields match the ClusterRole + ClusterRoleBinding that grant an identity (see
//! `manifests/examples/rbac.yaml`): API group `cid.wi.aks.azure.com`, the client ID as the
//! *resource* (not a resource name), verb `use-managed-identity`, no namespace (cluster scope, so only
//! a ClusterRoleBinding grants it). The subject is spelled out as the API server would authenticate
//! the pod's service account: its user name and the three groups every service account is in.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec, SubjectAccessReviewStatus,
};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::time::Instant;

use super::{millis, AccessDecision, Authorizer, AuthzError};
use crate::k8s::errors::short_reason;
use futures::future::BoxFuture;

/// API group whose resources are managed identities, named by client ID.
pub const API_GROUP: &str = "cid.wi.aks.azure.com";
/// The verb a service account needs on a client ID to be given that identity.
pub const VERB: &str = "use-managed-identity";

/// Asks the API server with one `SubjectAccessReview` per check (uncached: wrap it in
/// [`super::CachedAuthorizer`]).
#[derive(Clone)]
pub struct SubjectAccessReviews {
    client: Client,
}

impl SubjectAccessReviews {
    /// `client` should be built with `ClientOptions::for_requests()`, so a dead API server fails fast.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    async fn ask(
        &self,
        namespace: &str,
        service_account: &str,
        client_id: &str,
        deadline: Instant,
    ) -> Result<AccessDecision, AuthzError> {
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let review = review_for(namespace, service_account, client_id);
        let started = Instant::now();
        // Enforced here as well as by the client's timeouts, so the caller's budget always holds.
        match tokio::time::timeout_at(deadline, api.create(&PostParams::default(), &review)).await {
            Err(_) => Err(AuthzError::Timeout {
                waited_ms: millis(started.elapsed()),
            }),
            Ok(Err(error)) => Err(AuthzError::Unavailable {
                reason: short_reason(&error),
            }),
            Ok(Ok(answered)) => Ok(decision_of(answered.status.unwrap_or_default())),
        }
    }
}

impl Authorizer for SubjectAccessReviews {
    fn check<'a>(
        &'a self,
        namespace: &'a str,
        service_account: &'a str,
        client_id: &'a str,
        deadline: Instant,
    ) -> BoxFuture<'a, Result<AccessDecision, AuthzError>> {
        Box::pin(self.ask(namespace, service_account, client_id, deadline))
    }
}

/// The review asking whether `namespace/service_account` may use managed identity `client_id`.
pub fn review_for(namespace: &str, service_account: &str, client_id: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!(
                "system:serviceaccount:{namespace}:{service_account}"
            )),
            groups: Some(vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".to_owned(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                group: Some(API_GROUP.to_owned()),
                resource: Some(client_id.to_owned()),
                verb: Some(VERB.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

/// A missing status counts as "not allowed": only an explicit yes grants an identity.
fn decision_of(status: SubjectAccessReviewStatus) -> AccessDecision {
    let mut reason = status.reason.unwrap_or_default();
    if let Some(error) = status.evaluation_error.filter(|e| !e.is_empty()) {
        if !reason.is_empty() {
            reason.push_str("; ");
        }
        reason.push_str("evaluation error: ");
        reason.push_str(&error);
    }
    AccessDecision {
        allowed: status.allowed && status.denied != Some(true),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_names_the_service_account_and_the_client_id_as_resource() {
        let review = review_for("apps", "web", "1111-2222");
        let json = serde_json::to_value(&review).expect("serialises");
        assert_eq!(json["spec"]["user"], "system:serviceaccount:apps:web");
        assert_eq!(
            json["spec"]["groups"],
            serde_json::json!([
                "system:serviceaccounts",
                "system:serviceaccounts:apps",
                "system:authenticated"
            ])
        );
        assert_eq!(
            json["spec"]["resourceAttributes"],
            serde_json::json!({
                "group": "cid.wi.aks.azure.com",
                "resource": "1111-2222",
                "verb": "use-managed-identity"
            })
        );
    }

    #[test]
    fn only_an_explicit_allow_grants() {
        assert!(!decision_of(SubjectAccessReviewStatus::default()).allowed);
        let both = SubjectAccessReviewStatus {
            allowed: true,
            denied: Some(true),
            ..SubjectAccessReviewStatus::default()
        };
        assert!(!decision_of(both).allowed);
    }

    #[test]
    fn evaluation_errors_are_kept_in_the_reason() {
        let status = SubjectAccessReviewStatus {
            reason: Some("no binding".into()),
            evaluation_error: Some("webhook authorizer down".into()),
            ..SubjectAccessReviewStatus::default()
        };
        assert_eq!(
            decision_of(status).reason,
            "no binding; evaluation error: webhook authorizer down"
        );
    }

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        let error = kube::Error::Api(
            kube::core::Status::failure(&"é".repeat(400), "InternalError")
                .with_code(500)
                .boxed(),
        );
        let reason = short_reason(&error);
        assert!(reason.starts_with("API server answered 500 InternalError"));
        assert!(reason.ends_with('…'));
    }
}
