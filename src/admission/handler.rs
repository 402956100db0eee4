//! `Admitter`: one AdmissionReview body in, one response body out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::k8s::discovery::Discovery;
use crate::k8s::service_accounts::{LookupError, ServiceAccounts};
use crate::metrics::{LookupResult, LookupSource, Metrics, Outcome};
use crate::mutate::denial::{Denial, DenyReason};
use crate::mutate::service_account::ServiceAccountMeta;
use crate::mutate::settings::Settings;
use crate::mutate::{self, patch, view::PodView, Runtime};
use crate::review::{Refusal, ReviewHandler, ReviewReply};

use super::rbac::RbacStep;
use super::response;
use super::scratch;
use super::wire::{self, Object, Review, ReviewVersion};

/// The API server's default webhook timeout, used when the request carries no `?timeout=`.
const DEFAULT_BUDGET: Duration = Duration::from_secs(10);

/// Answers AdmissionReviews for pods with the configured mutation.
pub struct Admitter {
    settings: Arc<Settings>,
    /// Native or classic sidecars, from the API server version (classic until it answers).
    discovery: Discovery,
    service_accounts: Arc<dyn ServiceAccounts>,
    rbac: Option<RbacStep>,
    metrics: Metrics,
}

/// What a decoded review turned into, before it is written out.
struct Answer {
    outcome: Outcome,
    body: Vec<u8>,
}

/// Facts about the request, for the log line: borrowed from the review or its pod.
#[derive(Default)]
struct Subject<'p> {
    namespace: &'p str,
    pod: &'p str,
    service_account: &'p str,
}

impl Admitter {
    pub fn new(
        settings: Arc<Settings>,
        service_accounts: Arc<dyn ServiceAccounts>,
        metrics: Metrics,
    ) -> Self {
        Admitter {
            settings,
            discovery: Discovery::fixed(false),
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

    fn runtime(&self) -> Runtime {
        Runtime {
            native_sidecars: self.discovery.native_sidecars(),
        }
    }

    /// Handles one request body; `budget` is the time the API server waits for the answer.
    /// The body is taken as it comes (the server's `Bytes`), so that the boxed future of a review
    /// holds it once.
    pub async fn admit(
        &self,
        body: impl AsRef<[u8]> + Send,
        budget: Option<Duration>,
    ) -> ReviewReply {
        let started = Instant::now();
        let review = match wire::decode(body.as_ref()) {
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
                return ReviewReply {
                    status: 400,
                    body: response::refused(e.version, &e.uid, 400, &e.message, &[]),
                };
            }
        };
        // The lookup must give up early enough to leave time to answer before the API server does.
        let deadline = started + budget.unwrap_or(DEFAULT_BUDGET).mul_f32(0.8);
        let mut unparsed_pod = None;
        let mut subject = Subject::default();
        let answer = self
            .answer(&review, deadline, &mut unparsed_pod, &mut subject)
            .await;
        let elapsed = started.elapsed();
        self.metrics
            .record_admission(answer.outcome, subject.namespace, elapsed);
        tracing::info!(
            uid = %review.uid,
            namespace = %subject.namespace,
            pod = %subject.pod,
            service_account = %subject.service_account,
            outcome = answer.outcome.as_str(),
            reason = answer.outcome.reason(),
            duration_us = elapsed.as_micros() as u64,
            "admission review"
        );
        ReviewReply {
            status: 200,
            body: answer.body,
        }
    }

    /// A pod the review carries unparsed (rare: its object came before its kind) is parsed into
    /// `unparsed_pod`, boxed so as not to enlarge every review's future, which the caller owns so
    /// that `subject` can borrow from it until the log line is written.
    async fn answer<'p, 'a>(
        &self,
        review: &'p Review<'a>,
        deadline: Instant,
        unparsed_pod: &'p mut Option<Box<PodView<'a>>>,
        subject: &mut Subject<'p>,
    ) -> Answer {
        let version = review.version;
        let uid = review.uid.as_str();
        let deny = |denial: Denial| Answer {
            outcome: Outcome::Denied(denial.reason),
            body: response::denied(version, uid, &denial, &[]),
        };
        let request = &review.request;
        if !request.is_pod_create() {
            return Answer {
                outcome: Outcome::Ignored,
                body: response::allowed(version, uid, None, &[]),
            };
        }
        let pod: &'p PodView<'a> = match &request.object {
            Object::Pod(pod) => pod,
            Object::Raw(raw) => match PodView::from_json(raw.get()) {
                Ok(pod) => unparsed_pod.insert(Box::new(pod)),
                Err(e) => return deny(Denial::invalid_pod(invalid_pod(&e))),
            },
            Object::Invalid(e) => return deny(Denial::invalid_pod(invalid_pod(e))),
            Object::Missing => {
                return deny(Denial::invalid_pod(
                    "the AdmissionReview request has no object",
                ))
            }
        };
        if let Err(denial) = mutate::check_shape(pod) {
            return deny(denial);
        }
        let namespace = request
            .namespace
            .as_ref()
            .map(|n| n.as_str())
            .filter(|n| !n.is_empty())
            .or_else(|| pod_namespace(pod))
            .unwrap_or_default();
        subject.namespace = namespace;
        subject.pod = pod.display_name();
        if namespace.is_empty() {
            return deny(Denial::invalid_pod("the pod has no namespace"));
        }
        let sa_name = pod.service_account_name();
        subject.service_account = sa_name;
        // Matching on calls keeps their results out of the state this future carries across its
        // awaits.
        let service_account = match self.service_account(namespace, sa_name, deadline).await {
            Ok(sa) => sa,
            Err(LookupError::NotFound { namespace, name }) => {
                return deny(Denial::new(
                    DenyReason::ServiceAccountNotFound,
                    format!("service account {namespace}/{name} not found: create it or set spec.serviceAccountName"),
                ))
            }
            Err(e @ LookupError::Unavailable { .. }) => {
                return deny(Denial::new(
                    DenyReason::ServiceAccountUnavailable,
                    e.to_string(),
                ))
            }
        };
        let mut plan = match mutate::plan_reusing(
            &self.settings,
            self.runtime(),
            pod,
            &service_account,
            scratch::take_ops(),
        ) {
            Ok(plan) => plan,
            Err(denial) => return deny(denial),
        };
        // Only a pod the mutation accepts costs an RBAC call (boxed, as the API lookup).
        if let Some(rbac) = self.rbac.as_ref().filter(|rbac| rbac.applies(&plan)) {
            match Box::pin(rbac.check(&plan, &service_account, deadline, &self.metrics)).await {
                Ok(warnings) => plan.warnings.extend(warnings),
                Err(denial) => return deny(denial),
            }
        }
        let answer = if plan.ops.is_empty() {
            Answer {
                outcome: Outcome::Unchanged,
                body: response::allowed(version, uid, None, &plan.warnings),
            }
        } else {
            Answer {
                outcome: Outcome::Mutated,
                body: allowed_with_patch(version, uid, &plan),
            }
        };
        scratch::give_back_ops(plan.ops);
        answer
    }

    /// The pod's service account. A cache hit is answered at once, and the wait for the API
    /// server boxed: its state would otherwise be carried by every review's future.
    async fn service_account(
        &self,
        namespace: &str,
        name: &str,
        deadline: Instant,
    ) -> Result<Arc<ServiceAccountMeta>, LookupError> {
        match self.service_accounts.ready(namespace, name) {
            Some(hit) => Ok(hit),
            None => Box::pin(self.lookup(namespace, name, deadline)).await,
        }
    }

    /// A service account the cache does not hold yet, from the API server.
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
        Box::pin(self.admit(body, budget))
    }

    /// Counted like every other review (no namespace or duration is known), and answered as an
    /// AdmissionReview with no `uid` to echo.
    fn refuse(&self, refusal: Refusal, message: &str) -> ReviewReply {
        self.metrics.record_refused(refused_outcome(refusal));
        refusal_reply(refusal, message)
    }
}

fn refused_outcome(refusal: Refusal) -> Outcome {
    match refusal {
        Refusal::Shed => Outcome::Shed,
        Refusal::BodyTooLarge => Outcome::BodyTooLarge,
        Refusal::BodyTimeout => Outcome::BodyTimeout,
        Refusal::BodyUnreadable => Outcome::Malformed,
        Refusal::HandlerPanicked => Outcome::HandlerPanicked,
    }
}

/// The AdmissionReview answering a request the server refused itself.
pub fn refusal_reply(refusal: Refusal, message: &str) -> ReviewReply {
    let status = refusal.status();
    ReviewReply {
        status,
        body: response::refused(ReviewVersion::V1, "", status, message, &[]),
    }
}

/// The patch JSON is base64'd into the answer as soon as it is written, in the thread's buffer.
fn allowed_with_patch(version: ReviewVersion, uid: &str, plan: &mutate::Plan) -> Vec<u8> {
    scratch::with_patch_json(|json| {
        patch::write_json(&plan.ops, json);
        response::allowed(version, uid, Some(json), &plan.warnings)
    })
}
