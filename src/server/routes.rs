//! The admission route: `POST /mutate-v1-pod`, nothing else. The body goes to the
//! [`ReviewHandler`] untouched together with the API server's `?timeout=` budget.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::review::{Refusal, ReviewHandler, ReviewReply};

/// The path the MutatingWebhookConfiguration points at (same as upstream).
pub const MUTATE_PATH: &str = "/mutate-v1-pod";

/// Largest accepted request body, as upstream (7 MiB): the API server's own limit is larger, but
/// no sane pod comes close and it bounds memory per request.
pub const MAX_BODY_BYTES: usize = 7 * 1024 * 1024;

/// Longest wait for a request body, so that a stalled client frees its in-flight slot.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Default for `--max-in-flight-reviews`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1000;

/// The webhook listener's routes. Unknown paths get 404, other methods on the path 405.
pub fn router(handler: Arc<dyn ReviewHandler>) -> Router {
    router_with_limit(handler, DEFAULT_MAX_IN_FLIGHT)
}

/// As [`router`], shedding reviews beyond `max_in_flight` with an immediate 429 before their body
/// is read: under a burst a fast refusal beats a queue that outlives the API server's timeout.
/// Every request the server refuses itself is answered through [`ReviewHandler::refuse`].
pub fn router_with_limit(handler: Arc<dyn ReviewHandler>, max_in_flight: usize) -> Router {
    let route = Arc::new(MutateRoute {
        in_flight: AtomicUsize::new(0),
        limit: max_in_flight.max(1),
        handler,
    });
    Router::new()
        .route(MUTATE_PATH, post(mutate))
        .with_state(route)
}

/// The admission route's state: the handler and the in-flight count it sheds by. The count is
/// taken in the handler itself rather than in a middleware layer, which would cost every review a
/// boxed future and a `Next` for one atomic add.
struct MutateRoute {
    in_flight: AtomicUsize,
    limit: usize,
    handler: Arc<dyn ReviewHandler>,
}

/// Releases the slot however the request ends, including a dropped connection.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn mutate(State(route): State<Arc<MutateRoute>>, uri: Uri, body: Body) -> Response {
    let arrived = Instant::now();
    let before = route.in_flight.fetch_add(1, Ordering::AcqRel);
    let _slot = Slot(&route.in_flight);
    let handler = &route.handler;
    if before >= route.limit {
        tracing::warn!(
            limit = route.limit,
            "admission review shed: too many in flight"
        );
        let message = format!(
            "the webhook is already handling {} admission reviews; retry shortly",
            route.limit
        );
        return reply(handler.refuse(Refusal::Shed, &message));
    }
    let budget = uri.query().and_then(budget_from_query);
    let body = match read_body(body, budget).await {
        Ok(body) => body,
        Err((refusal, message)) => return reply(handler.refuse(refusal, &message)),
    };
    // The API server's clock started before the body arrived: the handler gets what is left, so a
    // slowly sent body cannot push the answer past the API server's timeout.
    let remaining = budget.map(|budget| budget.saturating_sub(arrived.elapsed()));
    let mut review = handler.review(body, remaining);
    // A panicking handler must cost one request a 500, not the whole HTTP/2 connection (and
    // every other request multiplexed on it). Upstream likewise recovers panics as code 500.
    let outcome = std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(AssertUnwindSafe(|| review.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(reply)) => Poll::Ready(Ok(reply)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    })
    .await;
    match outcome {
        Ok(answer) => reply(answer),
        Err(panic) => {
            let what = panic_message(panic.as_ref());
            tracing::error!(panic = %what, "admission handler panicked");
            let message = format!("internal error: admission handler panicked: {what}");
            reply(handler.refuse(Refusal::HandlerPanicked, &message))
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}

/// Reads the `timeout` parameter the API server appends (`timeout=10s`). Anything unparsable,
/// and zero, yields `None`: the handler then uses its own default rather than a bogus budget.
pub fn budget_from_query(query: &str) -> Option<Duration> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "timeout")
        .and_then(|(_, value)| parse_duration(value))
}

/// Parses `<digits><unit>` with unit `ms`, `s` or `m` (the API server sends whole seconds).
pub fn parse_duration(value: &str) -> Option<Duration> {
    let split = value.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = value.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let duration = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        _ => return None,
    };
    (!duration.is_zero()).then_some(duration)
}

/// Reads the whole body within the budget (at most [`BODY_READ_TIMEOUT`]): a body that never
/// arrives must not hold an in-flight slot for as long as its connection lives. Too large is 413,
/// too slow 408, broken off 400: the refusal and its message, for the handler to answer.
async fn read_body(body: Body, budget: Option<Duration>) -> Result<Bytes, (Refusal, String)> {
    let limit = budget.map_or(BODY_READ_TIMEOUT, |b| b.min(BODY_READ_TIMEOUT));
    let read = tokio::time::timeout(limit, Limited::new(body, MAX_BODY_BYTES).collect()).await;
    let (refusal, message) = match read {
        Ok(Ok(collected)) => return Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => (
            Refusal::BodyTooLarge,
            format!("request entity is too large; limit is {MAX_BODY_BYTES} bytes"),
        ),
        Ok(Err(e)) => (
            Refusal::BodyUnreadable,
            format!("cannot read request body: {e}"),
        ),
        Err(_) => (
            Refusal::BodyTimeout,
            format!("request body not received within {} ms", limit.as_millis()),
        ),
    };
    tracing::warn!(status = refusal.status(), %message, "admission request body rejected");
    Err((refusal, message))
}

fn reply(reply: ReviewReply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        reply.body,
    )
        .into_response()
}
