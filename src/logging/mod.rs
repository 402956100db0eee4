//! Structured logs: one JSON object per line on stderr, with `timestamp`, `level`, `target`, `message` and the
//! event's fields flattened beside them (so `{"outcome":"mutated",...}` rather than `{"fields":{...}}`).
//!
//! Verbosity comes from `--log-level` (unset → `warn`, `info`, `debug`, `trace`, `all` → `trace`, see
//! [`LogLevel::tracing_directive`]). `RUST_LOG`, when set and not empty, replaces it entirely, so an operator
//! can raise one module (`RUST_LOG=warn,azwi_webhook::k8s=debug`) without touching the flag.
//!
//! What is logged where: at `info`, one line per admission review with its uid, namespace, pod name, service
//! account, outcome and duration, never the request or response body, the pod spec, annotation values or
//! tokens. Payloads, if ever logged, belong at `trace`, which is opt-in.
//!
//! Lines are formatted by [`json_line`] and reach stderr through [`batch`]: the request path appends
//! its line to a buffer and a writer thread writes the gathered lines a few milliseconds later.

pub mod batch;
pub mod json_line;

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::EnvFilter;

use batch::{BatchedWriter, FlushGuard};
use json_line::JsonLines;

use crate::config::LogLevel;

/// The environment variable that overrides `--log-level`.
pub const ENV_FILTER_VAR: &str = crate::config::env::RUST_LOG;

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `RUST_LOG` is set but is not a valid filter.
    #[error("{ENV_FILTER_VAR}={value:?} is not a valid log filter: {source}")]
    Filter {
        value: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed (e.g. a second call in the same test binary).
    #[error("a global log subscriber is already installed")]
    AlreadyInstalled(#[source] tracing::subscriber::SetGlobalDefaultError),
    /// The thread that writes log lines could not be started.
    #[error("cannot start the log writer thread: {0}")]
    WriterThread(#[source] std::io::Error),
}

/// Installs the JSON-lines subscriber on stderr as the process-wide default. Reads `RUST_LOG`. Returns an
/// error instead of panicking when called twice, so tests may call it freely and ignore the result.
///
/// Keep the returned guard for as long as the process logs: dropping it writes the lines still
/// buffered (and later lines go to stderr directly).
#[must_use = "dropping the guard at once stops the log writer thread"]
pub fn init(level: LogLevel) -> Result<FlushGuard, LoggingError> {
    let rust_log = std::env::var(ENV_FILTER_VAR).ok();
    let filter = filter(level, rust_log.as_deref())?;
    let (writer, guard) =
        BatchedWriter::spawn(std::io::stderr(), batch::LINGER, batch::MAX_PENDING_BYTES)
            .map_err(LoggingError::WriterThread)?;
    tracing::subscriber::set_global_default(subscriber(filter, writer))
        .map_err(LoggingError::AlreadyInstalled)?;
    Ok(guard)
}

/// The filter for a `--log-level` value, unless `rust_log` (the value of `RUST_LOG`) is set and not empty.
pub fn filter(level: LogLevel, rust_log: Option<&str>) -> Result<EnvFilter, LoggingError> {
    match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        Some(value) => EnvFilter::try_new(value).map_err(|source| LoggingError::Filter {
            value: value.to_owned(),
            source,
        }),
        // The directives from `LogLevel` are plain level names, which always parse.
        None => Ok(EnvFilter::new(level.tracing_directive())),
    }
}

/// The subscriber `init` installs, writing to `writer`; separate so tests can capture its output.
pub fn subscriber<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(filter)
        .with(JsonLines::new(writer))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    fn capture(filter: EnvFilter, log: impl FnOnce()) -> Vec<serde_json::Value> {
        let buffer = Buffer::default();
        tracing::subscriber::with_default(subscriber(filter, buffer.clone()), log);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn flag_levels_map_to_directives() {
        let f = |level| filter(level, None).unwrap().to_string();
        assert_eq!(f(LogLevel::Unset), "warn");
        assert_eq!(f(LogLevel::Info), "info");
        assert_eq!(f(LogLevel::Debug), "debug");
        assert_eq!(f(LogLevel::Trace), "trace");
        assert_eq!(f(LogLevel::All), "trace");
    }

    #[test]
    fn rust_log_overrides_the_flag_unless_empty() {
        let f = |rust_log| filter(LogLevel::Info, rust_log).unwrap().to_string();
        assert_eq!(f(Some("azwi_webhook=debug")), "azwi_webhook=debug");
        assert_eq!(f(Some("  ")), "info");
        assert_eq!(f(None), "info");
    }

    #[test]
    fn invalid_rust_log_is_an_error_naming_the_variable() {
        let err = filter(LogLevel::Unset, Some("azwi_webhook=loud")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("RUST_LOG=\"azwi_webhook=loud\""),
            "{err}"
        );
    }

    #[test]
    fn writes_one_flat_json_object_per_event() {
        let lines = capture(EnvFilter::new("info"), || {
            tracing::info!(
                outcome = "mutated",
                duration_us = 42_u64,
                "admission review"
            );
            tracing::debug!("filtered out at info");
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "admission review");
        assert_eq!(line["outcome"], "mutated");
        assert_eq!(line["duration_us"], 42);
        assert_eq!(line["target"], "azwi_webhook::logging::tests");
        assert!(
            line["timestamp"].as_str().is_some_and(|t| t.contains('T')),
            "{line}"
        );
        assert!(line.get("fields").is_none(), "fields are flattened: {line}");
    }

    #[test]
    fn every_field_type_is_written_as_its_json_type() {
        let error = std::io::Error::other("disk \"full\"");
        let lines = capture(EnvFilter::new("info"), || {
            tracing::info!(
                text = "a\"b",
                shown = %"x\ny",
                debugged = ?vec![1, 2],
                negative = -3_i64,
                big = u64::MAX,
                ratio = 0.25_f64,
                nan = f64::NAN,
                flag = true,
                error = &error as &(dyn std::error::Error + 'static),
                "message with \"quotes\""
            );
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(line["message"], "message with \"quotes\"");
        assert_eq!(line["text"], "a\"b");
        assert_eq!(line["shown"], "x\ny");
        assert_eq!(line["debugged"], "[1, 2]");
        assert_eq!(line["negative"], -3);
        assert_eq!(line["big"], u64::MAX);
        assert_eq!(line["ratio"], 0.25);
        assert_eq!(line["nan"], "NaN");
        assert_eq!(line["flag"], true);
        assert_eq!(line["error"], "disk \"full\"");
    }

    #[test]
    fn unset_level_keeps_warnings_only() {
        let lines = capture(filter(LogLevel::Unset, None).unwrap(), || {
            tracing::info!("hidden");
            tracing::warn!("shown");
        });
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["message"], "shown");
    }

    #[test]
    fn second_init_is_an_error_not_a_panic() {
        let first = init(LogLevel::Unset);
        let second = init(LogLevel::Unset);
        // The first may already fail if another test in this binary installed a subscriber.
        assert!(first.is_ok() || second.is_err());
        assert!(matches!(second, Err(LoggingError::AlreadyInstalled(_))));
    }
}
