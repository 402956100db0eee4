//! Admission flows through the real TLS listener and the real admission handler, with the
//! Kubernetes side (service-account watch, live GETs, SubjectAccessReviews) on an in-process fake
//! API server: each test asserts on the HTTP answer and on the metrics scraped over HTTP.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/app.rs"]
mod test_app;
#[path = "support/tls.rs"]
mod tls_support;

use std::cell::{Cell, RefCell};
use std::time::Duration;

use azwi_webhook::config::ServeConfig;
use azwi_webhook::mutate::settings::{RbacCheck, Settings};
use fake_apiserver::{Endpoint, FakeApiServer};
use serde_json::{json, Value};
use test_app::{apply_patch, workload_pod, TestApp};
use tls_support::{eventually, generate_ca_and_leaf, Http, TestPki};

const REQUESTS: &str = "azwi_admission_requests_total";
const DEADLINE: Duration = Duration::from_secs(10);
const CLIENT_ID: &str = "azure.workload.identity/client-id";

struct Running {
    app: TestApp,
    pki: TestPki,
}

impl Running {
    async fn start(
        fake: &FakeApiServer,
        settings: Settings,
        adjust: impl FnOnce(&mut ServeConfig),
    ) -> Self {
        let pki = generate_ca_and_leaf(&["localhost"]);
        let mut config = test_app::serve_config(pki.path(), true, "azure-workload-identity-system");
        adjust(&mut config);
        let app = TestApp::start(config, settings, fake.config());
        assert!(app.wait_ready(DEADLINE).await, "webhook never became ready");
        Running { app, pki }
    }

    async fn review(&self, http: Http, uid: &str, pod: &Value) -> (u16, Value) {
        let body = test_app::pod_review("admission.k8s.io/v1", uid, pod);
        self.app.review(&self.pki.ca.pem, http, &body).await
    }

    async fn count(&self, labels: &[&str]) -> u64 {
        self.app.metric(REQUESTS, labels).await
    }
}

/// The value of env var `name` in the first container of `pod`.
fn env_value<'p>(pod: &'p Value, name: &str) -> Option<&'p str> {
    pod["spec"]["containers"][0]["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)?["value"]
        .as_str()
}

#[tokio::test]
async fn rbac_warn_mode_admits_an_unauthorized_identity_binding_pod_with_a_warning() {
    let fake = FakeApiServer::start().await;
    // No RBAC rule lets ns/unbound use cid-unbound: the SubjectAccessReview answers "no".
    fake.add_service_account("ns", "unbound", &[(CLIENT_ID, "cid-unbound")]);
    let running = Running::start(&fake, test_app::identity_binding_settings(), |config| {
        config.rbac_check = RbacCheck::Warn;
    })
    .await;
    let mut pod = workload_pod();
    pod["metadata"]["annotations"] =
        json!({"azure.workload.identity/use-identity-binding": "true"});
    pod["spec"]["serviceAccountName"] = json!("unbound");

    for (http, uid) in [(Http::V2, "uid-h2"), (Http::V1, "uid-h1")] {
        let (status, answer) = running.review(http, uid, &pod).await;
        assert_eq!(status, 200, "{answer}");
        let response = &answer["response"];
        assert_eq!(response["uid"], uid);
        assert_eq!(response["allowed"], true, "{answer}");
        let warnings: Vec<&str> = response["warnings"]
            .as_array()
            .map(|w| w.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("ns/unbound") && w.contains("cid-unbound")),
            "no RBAC warning naming the service account and client ID: {answer}"
        );
        let patched = apply_patch(&answer, &pod);
        assert_eq!(env_value(&patched, "AZURE_CLIENT_ID"), Some("cid-unbound"));
        let token =
            &patched["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
        assert_eq!(token["audience"], "api://AKSIdentityBinding");
    }

    // The first check asked the API server; the second was answered by the decision cache.
    assert_eq!(fake.count(Endpoint::SubjectAccessReview), 1);
    let app = &running.app;
    assert_eq!(
        running
            .count(&["outcome=\"mutated\"", "reason=\"none\""])
            .await,
        2
    );
    assert_eq!(running.count(&["outcome=\"denied\""]).await, 0);
    assert_eq!(
        app.metric(
            "azwi_rbac_checks_total",
            &["result=\"denied\"", "cached=\"false\""]
        )
        .await,
        1
    );
    assert_eq!(
        app.metric(
            "azwi_rbac_checks_total",
            &["result=\"denied\"", "cached=\"true\""]
        )
        .await,
        1
    );
    running.app.stop().await;
}

#[tokio::test]
async fn a_service_account_annotation_update_reaches_the_next_pod() {
    let fake = FakeApiServer::start_with_workload().await;
    let running = Running::start(&fake, test_app::settings(), |_| {}).await;
    let pod = workload_pod();

    let (status, first) = running.review(Http::V2, "uid-first", &pod).await;
    assert_eq!(status, 200, "{first}");
    let patched = apply_patch(&first, &pod);
    assert_eq!(env_value(&patched, "AZURE_CLIENT_ID"), Some("client-1"));

    fake.set_annotations("ns", "workload", &[(CLIENT_ID, "client-2")])
        .expect("service account exists");
    // Counted from the first review on; cells because each poll's future reads and updates them.
    let reviews = Cell::new(1u64);
    let seen = RefCell::new(String::new());
    let updated = eventually(DEADLINE, || {
        let (reviews, seen, running, pod) = (&reviews, &seen, &running, &pod);
        async move {
            reviews.set(reviews.get() + 1);
            let uid = format!("uid-{}", reviews.get());
            let (status, answer) = running.review(Http::V2, &uid, pod).await;
            assert_eq!(status, 200, "{answer}");
            let patched = apply_patch(&answer, pod);
            let client_id = env_value(&patched, "AZURE_CLIENT_ID").unwrap_or_default();
            *seen.borrow_mut() = client_id.to_owned();
            client_id == "client-2"
        }
    })
    .await;
    assert!(
        updated,
        "still injecting {:?} after the annotation changed",
        seen.borrow()
    );
    let reviews = reviews.get();

    // Every pod was answered from the watch cache: the update came through the watch.
    assert_eq!(fake.count(Endpoint::GetServiceAccount), 0);
    assert_eq!(
        running
            .count(&["outcome=\"mutated\"", "reason=\"none\""])
            .await,
        reviews
    );
    assert_eq!(
        running
            .app
            .metric(
                "azwi_service_account_lookups_total",
                &["source=\"cache\"", "result=\"hit\""]
            )
            .await,
        reviews
    );
    running.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviews_over_the_in_flight_limit_are_shed_with_429_and_counted() {
    let fake = FakeApiServer::start_with_workload().await;
    // A service account the cache does not hold costs a live GET, held here so that the review
    // keeps the only in-flight slot while the others arrive (4 s: room for two fresh TLS reviews on a
    // loaded machine, under the kube client's 5 s read timeout).
    fake.delay_endpoint(Endpoint::GetServiceAccount, Duration::from_secs(4));
    let running = Running::start(&fake, test_app::settings(), |config| {
        config.max_in_flight_reviews = 1;
    })
    .await;
    let mut uncached = workload_pod();
    uncached["spec"]["serviceAccountName"] = json!("not-yet-cached");
    let held = {
        let (addr, ca) = (running.app.addr, running.pki.ca.pem.clone());
        let body = test_app::pod_review("admission.k8s.io/v1", "uid-held", &uncached);
        tokio::spawn(async move {
            tls_support::post(addr, &ca, "/mutate-v1-pod?timeout=10s", &body, Http::V2).await
        })
    };
    assert!(
        eventually(DEADLINE, || async {
            fake.count(Endpoint::GetServiceAccount) >= 1
        })
        .await,
        "the held review never reached the API server"
    );

    for (http, uid) in [(Http::V2, "uid-shed-h2"), (Http::V1, "uid-shed-h1")] {
        let (status, answer) = running.review(http, uid, &workload_pod()).await;
        assert_eq!(status, 429, "{answer}");
        assert_eq!(answer["kind"], "AdmissionReview");
        assert_eq!(answer["response"]["allowed"], false);
        assert_eq!(answer["response"]["status"]["code"], 429);
        let message = answer["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default();
        assert!(message.contains("1 admission reviews"), "{message}");
    }
    assert!(
        !held.is_finished(),
        "the held review ended before the shed ones were sent"
    );

    let (status, body, _) = held.await.expect("task").expect("held request");
    assert_eq!(status, 200);
    let held: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(held["response"]["status"]["code"], 400, "{held}");
    // The slot is free again.
    let (status, answer) = running.review(Http::V2, "uid-after", &workload_pod()).await;
    assert_eq!(status, 200);
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    assert_eq!(
        running
            .count(&["outcome=\"shed\"", "reason=\"too_many_in_flight\""])
            .await,
        2
    );
    assert_eq!(
        running
            .count(&["outcome=\"denied\"", "reason=\"service_account_not_found\""])
            .await,
        1
    );
    assert_eq!(
        running
            .count(&["outcome=\"mutated\"", "reason=\"none\""])
            .await,
        1
    );
    assert_eq!(running.count(&[]).await, 4);
    running.app.stop().await;
}
