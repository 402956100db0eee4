//! Building the `kube::Client` the webhook talks to the API server with.
//!
//! The admission path has a budget of a few seconds (the API server gives the webhook 10 s at most), so a
//! client used on that path must fail fast instead of waiting on a dead API server: it gets connect, read
//! and write timeouts and no built-in retries (kube's default retry policy retries 503s up to 15 times).
//! Long-lived watches need the opposite, no read timeout (the watcher has its own idle timeout), hence
//! two presets in [`ClientOptions`].

use std::time::Duration;

use hyper::header::{HeaderValue, USER_AGENT as HTTP_USER_AGENT};
use kube::config::InferConfigError;
use kube::{Client, Config};

/// The `User-Agent` sent with every request, so API server audit logs and metrics name us.
pub const USER_AGENT: &str = concat!("azwi-webhook/", env!("CARGO_PKG_VERSION"));

/// Why no Kubernetes client could be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Neither a kubeconfig (`KUBECONFIG`, `~/.kube/config`) nor an in-cluster configuration was usable.
    #[error(
        "no Kubernetes client configuration found (tried KUBECONFIG, ~/.kube/config and in-cluster; \
         set KUBECONFIG or --kubeconfig, or run in a pod with a service account)"
    )]
    Infer(#[source] InferConfigError),
    /// The file given with `--kubeconfig` could not be read or used.
    #[error("cannot use --kubeconfig {path}")]
    Kubeconfig {
        path: std::path::PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The configuration's cluster CA holds no usable certificate: every connection would fail the
    /// TLS handshake (kube does not check it).
    #[error(
        "the certificate authority of the Kubernetes client configuration is unusable: {reason}"
    )]
    ClusterCa { reason: String },
    /// A configuration was found but a client could not be built from it (bad CA or client certificate).
    #[error("invalid Kubernetes client configuration")]
    Build(#[source] kube::Error),
}

/// Timeouts applied on top of whatever the kubeconfig says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Limit on establishing the TCP + TLS connection.
    pub connect_timeout: Duration,
    /// Limit on waiting for response bytes; `None` for watch streams, which are legitimately quiet.
    pub read_timeout: Option<Duration>,
    /// Limit on sending a request.
    pub write_timeout: Duration,
}

impl ClientOptions {
    /// For request/response calls made while an admission request waits (GET, SubjectAccessReview).
    pub fn for_requests() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            read_timeout: Some(Duration::from_secs(5)),
            write_timeout: Duration::from_secs(5),
        }
    }

    /// For long-lived list/watch streams (the service-account reflector): no read timeout, because a
    /// quiet watch is normal; kube's watcher detects a dead stream with its own idle timeout.
    pub fn for_watches() -> Self {
        Self {
            read_timeout: None,
            ..Self::for_requests()
        }
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self::for_requests()
    }
}

/// Finds the client configuration the standard way: `KUBECONFIG` / `~/.kube/config`, else in-cluster.
///
/// Returned separately from [`client_from_config`] so one inferred configuration can back both a
/// request client and a watch client.
pub async fn infer_config() -> Result<Config, ClientError> {
    let config = Config::infer().await.map_err(ClientError::Infer)?;
    check_cluster_ca(&config)?;
    Ok(config)
}

/// The client configuration from `path` (its current context), or inferred when `path` is `None`.
pub async fn load_config(path: Option<&std::path::Path>) -> Result<Config, ClientError> {
    let Some(path) = path else {
        return infer_config().await;
    };
    let failed = |source| ClientError::Kubeconfig {
        path: path.to_owned(),
        source,
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(failed)?;
    let config =
        Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(failed)?;
    check_cluster_ca(&config)?;
    Ok(config)
}

/// A configured CA must hold certificates: kube reads PEM without complaint when it finds none
/// (`certificate-authority-data` of a truncated or mistyped base64 value), and the client then
/// fails every handshake, retried forever behind "client error (Connect)".
fn check_cluster_ca(config: &Config) -> Result<(), ClientError> {
    let Some(roots) = &config.root_cert else {
        return Ok(());
    };
    if roots.is_empty() {
        return Err(ClientError::ClusterCa {
            reason: "no PEM certificate in it".into(),
        });
    }
    for (i, der) in roots.iter().enumerate() {
        x509_parser::parse_x509_certificate(der).map_err(|e| ClientError::ClusterCa {
            reason: format!("certificate {} does not parse: {e}", i + 1),
        })?;
    }
    Ok(())
}

/// Infers the configuration and builds a client with `options` applied.
pub async fn infer_client(options: &ClientOptions) -> Result<Client, ClientError> {
    client_from_config(infer_config().await?, options)
}

/// Builds a client from an explicit configuration (tests point it at a fake API server).
pub fn client_from_config(
    mut config: Config,
    options: &ClientOptions,
) -> Result<Client, ClientError> {
    apply_options(&mut config, options);
    // kube's rustls setup uses the process-wide crypto provider; make sure one exists so building a
    // client never panics even if `main` has not installed it yet. An error only means one is installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::try_from(config).map_err(ClientError::Build)
}

/// Applies timeouts, the user agent and the no-retry policy to `config`.
pub fn apply_options(config: &mut Config, options: &ClientOptions) {
    config.connect_timeout = Some(options.connect_timeout);
    config.read_timeout = options.read_timeout;
    config.write_timeout = Some(options.write_timeout);
    // Without this, a connection that sat idle in the pool would have its idle time counted against the
    // read timeout of the next request sent on it.
    config.reset_reader_on_write = options.read_timeout.is_some();
    // Retrying inside the client would silently eat the admission budget; callers decide instead.
    config.default_retry = false;
    config.headers.retain(|(name, _)| name != HTTP_USER_AGENT);
    config
        .headers
        .push((HTTP_USER_AGENT, HeaderValue::from_static(USER_AGENT)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_options_set_every_timeout_and_disable_retries() {
        let mut config = Config::new("https://127.0.0.1:6443".parse().expect("valid uri"));
        apply_options(&mut config, &ClientOptions::for_requests());
        assert_eq!(config.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(config.read_timeout, Some(Duration::from_secs(5)));
        assert!(config.reset_reader_on_write);
        assert!(!config.default_retry);
    }

    #[test]
    fn watch_options_have_no_read_timeout() {
        let mut config = Config::new("https://127.0.0.1:6443".parse().expect("valid uri"));
        apply_options(&mut config, &ClientOptions::for_watches());
        assert_eq!(config.read_timeout, None);
        assert!(!config.reset_reader_on_write);
    }

    #[test]
    fn user_agent_replaces_any_configured_one() {
        let mut config = Config::new("https://127.0.0.1:6443".parse().expect("valid uri"));
        config
            .headers
            .push((HTTP_USER_AGENT, HeaderValue::from_static("other")));
        apply_options(&mut config, &ClientOptions::default());
        let agents: Vec<_> = config
            .headers
            .iter()
            .filter(|(name, _)| name == HTTP_USER_AGENT)
            .map(|(_, value)| value.clone())
            .collect();
        assert_eq!(agents, vec![HeaderValue::from_static(USER_AGENT)]);
        assert!(USER_AGENT.starts_with("azwi-webhook/"));
    }
}
