//! Logs: JSON lines on stderr through tracing. Request payloads are never logged.

/// Installs the subscriber once; `RUST_LOG` overrides the `--log-level` directive when set.
pub fn init(directive: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directive));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
}
