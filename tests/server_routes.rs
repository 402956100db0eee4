//! The admission and health routes, exercised in-process with `oneshot` (no sockets).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use azwi_webhook::review::{ReviewHandler, ReviewReply};
use azwi_webhook::server::{
    budget_from_query, health_router, parse_duration, router, Readiness, MAX_BODY_BYTES,
};
use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Records the budget it was given and echoes the body.
#[derive(Default)]
struct Recorder {
    budgets: Mutex<Vec<Option<Duration>>>,
}

impl ReviewHandler for Recorder {
    fn refuse(
        &self,
        refusal: azwi_webhook::review::Refusal,
        message: &str,
    ) -> azwi_webhook::review::ReviewReply {
        azwi_webhook::admission::refusal_reply(refusal, message)
    }

    fn review(&self, body: Bytes, budget: Option<Duration>) -> BoxFuture<'_, ReviewReply> {
        self.budgets.lock().unwrap().push(budget);
        Box::pin(async move {
            ReviewReply {
                status: 200,
                body: body.to_vec(),
            }
        })
    }
}

async fn call(
    app: axum::Router,
    method: &str,
    uri: &str,
    body: Vec<u8>,
) -> (StatusCode, Option<String>, Vec<u8>) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, ct, body)
}

#[tokio::test]
async fn post_mutate_passes_body_to_handler_and_answers_json() {
    let handler = Arc::new(Recorder::default());
    let (status, ct, body) = call(
        router(handler.clone()),
        "POST",
        "/mutate-v1-pod",
        b"{\"a\":1}".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some("application/json"));
    assert_eq!(body, b"{\"a\":1}");
}

#[tokio::test]
async fn handler_status_is_passed_through() {
    struct Status418;
    impl ReviewHandler for Status418 {
        fn refuse(
            &self,
            refusal: azwi_webhook::review::Refusal,
            message: &str,
        ) -> azwi_webhook::review::ReviewReply {
            azwi_webhook::admission::refusal_reply(refusal, message)
        }

        fn review(&self, _: Bytes, _: Option<Duration>) -> BoxFuture<'_, ReviewReply> {
            Box::pin(async {
                ReviewReply {
                    status: 400,
                    body: b"{}".to_vec(),
                }
            })
        }
    }
    let (status, ct, _) = call(
        router(Arc::new(Status418)),
        "POST",
        "/mutate-v1-pod",
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(ct.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn unknown_path_is_404() {
    let app = router(Arc::new(Recorder::default()));
    for path in ["/", "/mutate", "/mutate-v1-pod/extra", "/healthz"] {
        let (status, _, _) = call(app.clone(), "POST", path, vec![]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn get_on_mutate_path_is_405() {
    let (status, _, _) = call(
        router(Arc::new(Recorder::default())),
        "GET",
        "/mutate-v1-pod",
        vec![],
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn body_over_7_mib_is_413_with_admission_review_error() {
    let handler = Arc::new(Recorder::default());
    let (status, ct, body) = call(
        router(handler.clone()),
        "POST",
        "/mutate-v1-pod",
        vec![b' '; MAX_BODY_BYTES + 1],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(ct.as_deref(), Some("application/json"));
    let review: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(review["kind"], "AdmissionReview");
    assert_eq!(review["response"]["allowed"], false);
    assert_eq!(review["response"]["status"]["code"], 413);
    assert!(review["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("7340032"));
    assert!(
        handler.budgets.lock().unwrap().is_empty(),
        "handler must not run"
    );
}

#[tokio::test]
async fn body_of_exactly_7_mib_is_accepted() {
    let (status, _, body) = call(
        router(Arc::new(Recorder::default())),
        "POST",
        "/mutate-v1-pod",
        vec![b' '; MAX_BODY_BYTES],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), MAX_BODY_BYTES);
}

#[tokio::test]
async fn timeout_query_becomes_the_budget() {
    let handler = Arc::new(Recorder::default());
    let app = router(handler.clone());
    for uri in [
        "/mutate-v1-pod?timeout=10s",
        "/mutate-v1-pod?foo=bar&timeout=500ms",
        "/mutate-v1-pod?timeout=bogus",
        "/mutate-v1-pod",
    ] {
        call(app.clone(), "POST", uri, b"{}".to_vec()).await;
    }
    let budgets = handler.budgets.lock().unwrap().clone();
    let within = |budget: Option<Duration>, full: Duration| {
        budget.is_some_and(|b| b <= full && b > full - Duration::from_millis(100))
    };
    assert!(within(budgets[0], Duration::from_secs(10)), "{budgets:?}");
    assert!(
        within(budgets[1], Duration::from_millis(500)),
        "{budgets:?}"
    );
    assert_eq!(budgets[2..], [None, None]);
}

#[tokio::test]
async fn time_spent_receiving_the_body_is_taken_from_the_budget() {
    let handler = Arc::new(Recorder::default());
    let app = router(handler.clone());
    let slow_body = futures::stream::once(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok::<_, std::convert::Infallible>(Bytes::from_static(b"{}"))
    });
    let request = Request::builder()
        .method("POST")
        .uri("/mutate-v1-pod?timeout=1s")
        .header("content-type", "application/json")
        .body(Body::from_stream(slow_body))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let budget = handler.budgets.lock().unwrap()[0].expect("a budget");
    assert!(budget <= Duration::from_millis(700), "{budget:?}");
}

#[test]
fn duration_parsing_accepts_s_ms_m_and_rejects_the_rest() {
    assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
    assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
    assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
    assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
    for bad in [
        "",
        "10",
        "s",
        "-1s",
        "1.5s",
        "10h",
        "0s",
        "10 s",
        "99999999999999999999s",
    ] {
        assert_eq!(parse_duration(bad), None, "{bad:?}");
    }
    assert_eq!(
        budget_from_query("timeout=5s"),
        Some(Duration::from_secs(5))
    );
    assert_eq!(budget_from_query("timeouts=5s"), None);
    assert_eq!(budget_from_query("timeout"), None);
}

#[tokio::test]
async fn healthz_is_always_ok() {
    let readiness = Readiness::new();
    let (status, _, body) = call(health_router(readiness), "GET", "/healthz", vec![]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"ok\n");
}

#[tokio::test]
async fn readyz_names_what_is_pending_until_all_ready() {
    let readiness = Readiness::new();
    let app = health_router(readiness.clone());
    let sa = readiness.register("service-account-cache-synced");

    let (status, _, body) = call(app.clone(), "GET", "/readyz", vec![]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("certificate"), "{text}");
    assert!(text.contains("webhook listener"), "{text}");
    assert!(text.contains("service-account-cache-synced"), "{text}");

    readiness.set_certificate_loaded(true);
    readiness.set_handler_serving(true);
    let (status, _, body) = call(app.clone(), "GET", "/readyz", vec![]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "not ready: service-account-cache-synced not ready\n"
    );

    sa.set_ready(true);
    let (status, _, body) = call(app.clone(), "GET", "/readyz", vec![]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"ok\n");

    readiness.begin_shutdown();
    let (status, _, body) = call(app, "GET", "/readyz", vec![]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(String::from_utf8(body).unwrap().contains("shutting down"));
}

#[test]
fn registering_a_check_twice_returns_the_same_check() {
    let readiness = Readiness::new();
    readiness.set_certificate_loaded(true);
    readiness.set_handler_serving(true);
    let a = readiness.register("x");
    let b = readiness.register("x");
    b.set_ready(true);
    assert!(a.is_ready());
    assert!(readiness.is_ready());
}

#[tokio::test]
async fn panicking_handler_gets_500_admission_review() {
    struct Panics;
    impl ReviewHandler for Panics {
        fn refuse(
            &self,
            refusal: azwi_webhook::review::Refusal,
            message: &str,
        ) -> azwi_webhook::review::ReviewReply {
            azwi_webhook::admission::refusal_reply(refusal, message)
        }

        fn review(&self, _: Bytes, _: Option<Duration>) -> BoxFuture<'_, ReviewReply> {
            Box::pin(async { panic!("boom") })
        }
    }
    let (status, ct, body) = call(
        router(Arc::new(Panics)),
        "POST",
        "/mutate-v1-pod",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(ct.as_deref(), Some("application/json"));
    let review: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(review["response"]["status"]["code"], 500);
    assert!(review["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("boom"));
}

/// Holds every review until released, counting those that reached the handler.
struct Gate {
    release: tokio::sync::Semaphore,
    entered: std::sync::atomic::AtomicUsize,
}

impl ReviewHandler for Gate {
    fn refuse(
        &self,
        refusal: azwi_webhook::review::Refusal,
        message: &str,
    ) -> azwi_webhook::review::ReviewReply {
        azwi_webhook::admission::refusal_reply(refusal, message)
    }

    fn review(&self, body: Bytes, _: Option<Duration>) -> BoxFuture<'_, ReviewReply> {
        self.entered
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            let _permit = self.release.acquire().await;
            ReviewReply {
                status: 200,
                body: body.to_vec(),
            }
        })
    }
}

#[tokio::test]
async fn reviews_beyond_the_in_flight_limit_are_shed_with_429() {
    let gate = Arc::new(Gate {
        release: tokio::sync::Semaphore::new(0),
        entered: std::sync::atomic::AtomicUsize::new(0),
    });
    let app = azwi_webhook::server::router_with_limit(gate.clone(), 2);
    let held: Vec<_> = (0..2)
        .map(|_| tokio::spawn(call(app.clone(), "POST", "/mutate-v1-pod", b"{}".to_vec())))
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while gate.entered.load(std::sync::atomic::Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "requests never reached the handler"
        );
        tokio::task::yield_now().await;
    }
    let (status, _, shed) = call(app.clone(), "POST", "/mutate-v1-pod", b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let review: serde_json::Value = serde_json::from_slice(&shed).unwrap();
    assert_eq!(review["response"]["status"]["code"], 429);
    assert!(review["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("2 admission reviews"));
    gate.release.add_permits(100);
    for task in held {
        assert_eq!(task.await.unwrap().0, StatusCode::OK);
    }
    let (status, _, _) = call(app, "POST", "/mutate-v1-pod", b"{}".to_vec()).await;
    assert_eq!(status, StatusCode::OK, "slots are released");
}
