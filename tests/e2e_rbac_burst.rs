//! A burst of identity-binding pods for one service account (a Job or a rollout) costs the API
//! server one SubjectAccessReview, through the real serve wiring over HTTP/2.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/h2.rs"]
mod h2;
#[path = "support/app.rs"]
mod test_app;
#[path = "support/tls.rs"]
mod tls_support;

use std::time::Duration;

use fake_apiserver::{Endpoint, FakeApiServer, RbacRule};
use serde_json::{json, Value};
use test_app::TestApp;
use tls_support::{generate_ca_and_leaf, get_plain};

const REVIEWS: usize = 1_000;
const CONNECTIONS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thousand_concurrent_reviews_make_one_subject_access_review() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account(
        "ns",
        "batch",
        &[("azure.workload.identity/client-id", "cid-batch")],
    );
    fake.add_rule(
        RbacRule::allow()
            .user("system:serviceaccount:ns:batch")
            .verb("use-managed-identity")
            .api_group("cid.wi.aks.azure.com")
            .resource("cid-batch"),
    );
    // A slow answer keeps the first check in flight while the whole burst arrives.
    fake.delay_endpoint(Endpoint::SubjectAccessReview, Duration::from_millis(300));
    let pki = generate_ca_and_leaf(&["localhost"]);
    let config = test_app::serve_config(pki.path(), true, "azure-workload-identity-system");
    let app = TestApp::start(config, test_app::identity_binding_settings(), fake.config());
    assert!(app.wait_ready(Duration::from_secs(10)).await);

    let mut sessions = Vec::new();
    for _ in 0..CONNECTIONS {
        sessions.push(
            h2::session(app.addr, &pki.ca.pem)
                .await
                .expect("h2 session"),
        );
    }
    let mut tasks = Vec::with_capacity(REVIEWS);
    for i in 0..REVIEWS {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("job-{i}"), "namespace": "ns",
                         "annotations": {"azure.workload.identity/use-identity-binding": "true"}},
            "spec": {"serviceAccountName": "batch", "containers": [{"name": "c", "image": "i"}]}
        });
        let body = test_app::pod_review("admission.k8s.io/v1", &format!("uid-{i}"), &pod);
        let sender = sessions[i % CONNECTIONS].clone();
        tasks.push(tokio::spawn(async move {
            h2::post(sender, "/mutate-v1-pod?timeout=10s", body).await
        }));
    }
    let mut allowed = 0;
    for task in tasks {
        let (status, body) = task.await.expect("task").expect("request");
        assert_eq!(status, 200);
        let review: Value = serde_json::from_slice(&body).expect("json");
        if review["response"]["allowed"] == true {
            allowed += 1;
        }
    }
    assert_eq!(allowed, REVIEWS);
    assert_eq!(fake.count(Endpoint::SubjectAccessReview), 1);
    // One check cost an API call; the others waited on it and are counted as answered without one.
    let (status, scrape) = get_plain(app.metrics_addr, "/metrics")
        .await
        .expect("scrape");
    assert_eq!(status, 200);
    for series in [
        "azwi_rbac_checks_total{cached=\"false\",result=\"allowed\"} 1\n",
        "azwi_rbac_checks_total{cached=\"true\",result=\"allowed\"} 999\n",
        "azwi_rbac_check_duration_seconds_count 1\n",
    ] {
        assert!(scrape.contains(series), "missing {series} in\n{scrape}");
    }
    app.stop().await;
}
