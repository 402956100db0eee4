//! `Admitter`: one AdmissionReview body in, one response body out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::k8s::discovery::Discovery;
use crate::k8s::service_accounts::{LookupError, ServiceAccounts};
use crate::mutate::service_account::ServiceAccountMeta;
use crate::metrics::{LookupResult, LookupSource, Metrics};
use crate::mutate::{self, patch, view::PodView};
use futures::future::BoxFuture;
use crate::review::{ReviewHandler, ReviewReply};
use crate::mutate::settings::Settings;

use super::outcome::{DenyReason, Outcome};
use super::rbac::RbacStep;
use super::response::{self, Denial};
use super::wire::{self, Object, Review};

/// The API server's default webhook timeout, used when the request carries no `?timeout=`.
const DEFAULT_BUDGET: Duration = Duration::from_secs(10);

/// Answers AdmissionReviews for pods with the configured mutation.
pub struct Admitter {
    /// Classic sidecars, for API servers older than 1.32 (and until discovery answers).
    settings: Arc<Settings>,
    /// The same settings with native sidecars.
    native_settings: Arc<Settings>,
    discovery: Discovery,
    service_accounts: Arc<dyn ServiceAccounts>,
    rbac: Option<RbacStep>,
    metrics: Metrics,
}

/// What a decoded review turned into, before it is written out.
struct Decision {
    outcome: Outcome,
    body: Vec<u8>,
}

/// Facts about the request, for the log line.
#[derive(Default)]
struct Subject {
    namespace: String,
    pod: String,
    service_account: String,
}

impl Admitter {
    pub fn new(
        settings: Arc<Settings>,
        service_accounts: Arc<dyn ServiceAccounts>,
        metrics: Metrics,
    ) -> Self {
        let classic = Settings {
            native_sidecars: false,
            ..settings.as_ref().clone()
        };
        let native = Settings {
            native_sidecars: true,
            ..classic.clone()
        };
        Admitter {
            settings: Arc::new(classic),
            native_settings: Arc::new(native),
            discovery: Discovery::fixed(settings.native_sidecars),
            service_accounts,
            rbac: None,
            metrics,
        }
    }

    /// Picks native or classic sidecars from the API server version, as discovered.
    pub fn with_discovery(mut self, discovery: Discovery) -> Self {
        self.discovery = discovery;
        self
    }

    /// Checks identity-binding pods with SubjectAccessReviews, as `--rbac-check` says.
    pub fn with_rbac(mut self, rbac: RbacStep) -> Self {
        self.rbac = Some(rbac);
        self
    }

    fn current_settings(&self) -> &Settings {
        if self.discovery.native_sidecars() {
            &self.native_settings
        } else {
            &self.settings
        }
    }

    /// Handles one request body; `budget` is the time the API server waits for the answer.
    pub async fn admit(&self, body: &[u8], budget: Option<Duration>) -> ReviewReply {
        let started = Instant::now();
        let review = match wire::decode(body) {
            Ok(review) => review,
            Err(e) => {
                let elapsed = started.elapsed();
                self.metrics
                    .record_admission(Outcome::Malformed, "", elapsed);
                // Same message and fields as every other review, so one log filter sees them all.
                tracing::info!(
                    uid = %e.uid,
                    namespace = "",
                    pod = "",
                    service_account = "",
                    outcome = Outcome::Malformed.as_str(),
                    reason = Outcome::Malformed.reason(),
                    duration_us = elapsed.as_micros() as u64,
                    error = %e.message,
                    "admission review"
                );
                let denial = Denial {
                    code: 400,
                    message: e.message,
                };
                return ReviewReply {
                    status: 400,
                    body: response::denied(e.version, &e.uid, &denial, &[]),
                };
            }
        };
        // The lookup must give up early enough to leave time to answer before the API server does.
        let deadline = started + budget.unwrap_or(DEFAULT_BUDGET).mul_f32(0.8);
        let mut subject = Subject::default();
        let decision = self.decide(&review, deadline, &mut subject).await;
        let elapsed = started.elapsed();
        self.metrics
            .record_admission(decision.outcome, &subject.namespace, elapsed);
        tracing::info!(
            uid = %review.uid,
            namespace = %subject.namespace,
            pod = %subject.pod,
            service_account = %subject.service_account,
            outcome = decision.outcome.as_str(),
            reason = decision.outcome.reason(),
            duration_us = elapsed.as_micros() as u64,
            "admission review"
        );
        ReviewReply {
            status: 200,
            body: decision.body,
        }
    }

    async fn decide(
        &self,
        review: &Review<'_>,
        deadline: Instant,
        subject: &mut Subject,
    ) -> Decision {
        let version = review.version;
        let uid = review.uid.as_str();
        let deny = |reason: DenyReason, code: u16, message: String| Decision {
            outcome: Outcome::Denied(reason),
            body: response::denied(version, uid, &Denial { code, message }, &[]),
        };
        let request = &review.request;
        if !request.is_pod_create() {
            return Decision {
                outcome: Outcome::Ignored,
                body: response::allowed(version, uid, None, &[]),
            };
        }
        let parsed;
        let pod = match &request.object {
            Object::Pod(pod) => pod,
            Object::Raw(raw) => match PodView::from_json(raw.get()) {
                Ok(pod) => {
                    parsed = pod;
                    &parsed
                }
                Err(e) => return deny(DenyReason::InvalidPod, 400, invalid_pod(&e)),
            },
            Object::Invalid(e) => return deny(DenyReason::InvalidPod, 400, invalid_pod(e)),
            Object::Missing => {
                return deny(
                    DenyReason::InvalidPod,
                    400,
                    "the AdmissionReview request has no object".into(),
                )
            }
        };
        if let Err(rejection) = mutate::check_shape(pod) {
            return deny(DenyReason::InvalidPod, rejection.code, rejection.message);
        }
        let namespace = request
            .namespace
            .as_ref()
            .map(|n| n.as_str())
            .filter(|n| !n.is_empty())
            .or_else(|| pod_namespace(pod))
            .unwrap_or_default();
        subject.namespace = namespace.to_owned();
        subject.pod = pod.display_name().to_owned();
        if namespace.is_empty() {
            return deny(
                DenyReason::InvalidPod,
                400,
                "the pod has no namespace".into(),
            );
        }
        let sa_name = pod.service_account_name();
        subject.service_account = sa_name.to_owned();
        let service_account = match self.lookup(namespace, sa_name, deadline).await {
            Ok(sa) => sa,
            Err(LookupError::NotFound { namespace, name }) => {
                return deny(
                    DenyReason::ServiceAccountNotFound,
                    400,
                    format!("service account {namespace}/{name} not found: create it or set spec.serviceAccountName"),
                )
            }
            Err(e @ LookupError::Unavailable { .. }) => {
                return deny(DenyReason::ServiceAccountUnavailable, 500, e.to_string())
            }
        };
        let settings = self.current_settings();
        let mut mutation = match mutate::plan(settings, pod, &service_account) {
            Ok(mutation) => mutation,
            Err(rejection) => {
                return deny(DenyReason::InvalidPod, rejection.code, rejection.message)
            }
        };
        // Only a pod the mutation accepts costs an RBAC call.
        if let Some(rbac) = &self.rbac {
            match rbac
                .check(settings, pod, &service_account, deadline, &self.metrics)
                .await
            {
                Ok(warnings) => mutation.warnings.extend(warnings),
                Err(denial) => return deny(denial.reason, denial.code, denial.message),
            }
        }
        if mutation.ops.is_empty() {
            return Decision {
                outcome: Outcome::Unchanged,
                body: response::allowed(version, uid, None, &mutation.warnings),
            };
        }
        Decision {
            outcome: Outcome::Mutated,
            body: response::allowed(
                version,
                uid,
                Some(&patch::to_json(&mutation.ops)),
                &mutation.warnings,
            ),
        }
    }

    async fn lookup(
        &self,
        namespace: &str,
        name: &str,
        deadline: Instant,
    ) -> Result<Arc<ServiceAccountMeta>, LookupError> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, self.service_accounts.get(namespace, name)).await {
            Ok(result) => result,
            Err(_) => {
                self.metrics
                    .record_service_account_lookup(LookupSource::Api, LookupResult::Error);
                Err(LookupError::Unavailable {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    reason: format!("no answer within {} ms", remaining.as_millis()),
                })
            }
        }
    }
}

fn invalid_pod(error: &dyn std::fmt::Display) -> String {
    format!("request.object is not a valid Pod: {error}")
}

fn pod_namespace<'p>(pod: &'p PodView<'_>) -> Option<&'p str> {
    pod.metadata
        .as_ref()?
        .namespace
        .as_ref()
        .map(|n| n.as_str())
        .filter(|n| !n.is_empty())
}

impl ReviewHandler for Admitter {
    fn review(&self, body: Bytes, budget: Option<Duration>) -> BoxFuture<'_, ReviewReply> {
        Box::pin(async move { self.admit(&body, budget).await })
    }
}
