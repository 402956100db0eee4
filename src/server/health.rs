//! Liveness and readiness. Readiness means "this replica can answer admission requests right
//! now": a serving certificate is loaded, the webhook listener runs with its handler, we are not
//! shutting down, and every named check registered by other parts (e.g. the service-account
//! cache's first sync) has passed. Upstream reported ready before its handler existed (W17).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// Cheap cloneable readiness state; every clone sees the same flags.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    certificate: AtomicBool,
    handler: AtomicBool,
    shutting_down: AtomicBool,
    /// Registered rarely (startup), read at probe cadence: a mutex is plenty.
    checks: Mutex<Vec<ReadinessCheck>>,
}

/// One named condition, initially not ready; the registering component flips it.
#[derive(Debug, Clone)]
pub struct ReadinessCheck {
    name: Arc<str>,
    ready: Arc<AtomicBool>,
}

impl ReadinessCheck {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// A serving certificate is (or is no longer) available.
    pub fn set_certificate_loaded(&self, loaded: bool) {
        self.inner.certificate.store(loaded, Ordering::Release);
    }

    /// The webhook listener is accepting with the admission handler in place.
    pub fn set_handler_serving(&self, serving: bool) {
        self.inner.handler.store(serving, Ordering::Release);
    }

    /// Irreversible: from now on `/readyz` fails so endpoints stop routing to this replica.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Release);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }

    /// Adds a named condition that must become ready before the replica is. Registering the same
    /// name twice returns the existing check.
    pub fn register(&self, name: &str) -> ReadinessCheck {
        let mut checks = self.checks();
        if let Some(found) = checks.iter().find(|c| &*c.name == name) {
            return found.clone();
        }
        let check = ReadinessCheck {
            name: Arc::from(name),
            ready: Arc::new(AtomicBool::new(false)),
        };
        checks.push(check.clone());
        check
    }

    /// What is not ready yet, in a fixed order; empty when ready.
    pub fn pending(&self) -> Vec<String> {
        let mut pending = Vec::new();
        if self.is_shutting_down() {
            pending.push("shutting down".to_string());
        }
        if !self.inner.certificate.load(Ordering::Acquire) {
            pending.push("serving certificate not loaded".to_string());
        }
        if !self.inner.handler.load(Ordering::Acquire) {
            pending.push("webhook listener not serving".to_string());
        }
        for check in self.checks().iter().filter(|c| !c.is_ready()) {
            pending.push(format!("{} not ready", check.name));
        }
        pending
    }

    pub fn is_ready(&self) -> bool {
        self.pending().is_empty()
    }

    fn checks(&self) -> std::sync::MutexGuard<'_, Vec<ReadinessCheck>> {
        // The list is only ever pushed to, so a poisoned lock still holds consistent data.
        self.inner
            .checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// `/healthz` (200 while the process can answer at all) and `/readyz` (200 `ok`, or 503 naming
/// what is pending), for the plain-HTTP health listener.
pub fn health_router(readiness: Readiness) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { text(StatusCode::OK, "ok".to_string()) }),
        )
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move {
                    let pending = readiness.pending();
                    if pending.is_empty() {
                        text(StatusCode::OK, "ok".to_string())
                    } else {
                        text(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("not ready: {}", pending.join(", ")),
                        )
                    }
                }
            }),
        )
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body + "\n",
    )
        .into_response()
}
