//! The HTTP side of the webhook: the TLS admission listener, plain-HTTP health (and metrics)
//! listeners, and graceful shutdown. Admission logic lives behind [`crate::review::ReviewHandler`].

mod conn;
mod health;
mod routes;
mod serve;

use std::time::Duration;

pub use health::{health_router, Readiness, ReadinessCheck};
pub use routes::{
    budget_from_query, parse_duration, router, router_with_limit, DEFAULT_MAX_IN_FLIGHT,
    MAX_BODY_BYTES, MUTATE_PATH,
};
pub use serve::{serve, shutdown_signal, Listeners};

/// Errors starting the server. Once serving, per-connection failures are logged, not returned.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot use the {name} listener: {source}")]
    Listener {
        name: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Timeouts and limits for [`serve`]. Defaults suit a webhook the API server calls with a 10 s
/// budget.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// After the shutdown trigger, keep serving this long with readiness failing
    /// (`--shutdown-delay`), so endpoint removal reaches the API servers first.
    pub shutdown_delay: Duration,
    /// Then give in-flight requests at most this long to finish.
    pub shutdown_grace: Duration,
    /// A client that has not completed the TLS handshake by then is dropped.
    pub tls_handshake_timeout: Duration,
    /// HTTP/1 request headers must arrive within this.
    pub header_read_timeout: Duration,
    /// HTTP/2 streams per connection.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2 PING interval detecting dead connections (`None`: off).
    pub http2_keep_alive_interval: Option<Duration>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            shutdown_delay: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            http2_max_concurrent_streams: 250,
            http2_keep_alive_interval: Some(Duration::from_secs(30)),
        }
    }
}
