//! `serve`: builds every part from the validated configuration and runs until SIGTERM.

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;
use std::sync::Arc;

use crate::admission::rbac::RbacStep;
use crate::admission::Admitter;
use crate::certs;
use crate::config::{ipv4_fallback, ServeConfig};
use crate::k8s::authz::{CacheConfig as AuthzCacheConfig, CachedAuthorizer, SubjectAccessReviews};
use crate::k8s::cache::{CacheOptions, CachedServiceAccounts, LookupObserver, WatchObserver};
use crate::k8s::client::{client_from_config, load_config, ClientOptions};
use crate::k8s::discovery::{Discovery, DiscoveryOptions};
use crate::k8s::live::LiveServiceAccounts;
use crate::metrics::Metrics;
use crate::mutate::settings::RbacCheck;
use crate::mutate::settings::Settings;
use crate::server::{self, Listeners, Readiness, ServeOptions};
use crate::tls::{self, CertReloader, CertResolver};

/// How often `azwi_service_account_cache_objects` is refreshed.
const CACHE_GAUGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the webhook could not start; printed as one line before exiting non-zero.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot listen on {flag} {addr}: {source}")]
    Bind {
        flag: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("Kubernetes client: {0}")]
    Kubernetes(#[source] crate::k8s::client::ClientError),
    #[error("TLS: {0}")]
    Tls(#[source] crate::tls::TlsError),
    #[error("logging: {0}")]
    Logging(#[source] crate::logging::LoggingError),
    #[error("metrics: {0}")]
    Metrics(#[source] crate::metrics::MetricsError),
    #[error("server: {0}")]
    Server(#[source] crate::server::ServerError),
    #[error(transparent)]
    LocalInput(#[from] crate::startup::LocalInputError),
}

/// Runs `serve` to completion: exit 0 after a graceful shutdown, 1 when startup fails.
pub fn run(config: ServeConfig, settings: Settings) -> ExitCode {
    let log_guard = match crate::logging::init(config.log_level) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("azwi-webhook: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(StartupError::Runtime)
        .and_then(|runtime| runtime.block_on(serve_from_environment(config, settings)));
    // Writes the buffered log lines first, so a startup error below stays the last line.
    drop(log_guard);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Only the plain line: a JSON log line as well would print the one error twice, and the
        // contract (README, W17) is one line, the last on stderr, as for configuration errors.
        Err(e) => {
            eprintln!("azwi-webhook: {}", crate::startup::one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The listeners `serve` uses, bound before it starts (tests bind `127.0.0.1:0`).
pub struct BoundListeners {
    pub webhook: TcpListener,
    pub health: TcpListener,
    pub metrics: TcpListener,
}

impl BoundListeners {
    pub fn bind(config: &ServeConfig) -> Result<Self, StartupError> {
        Ok(BoundListeners {
            webhook: bind("--webhook-addr", config.webhook_addr)?,
            health: bind("--health-addr", config.health_addr)?,
            metrics: bind("--metrics-addr", config.metrics_addr)?,
        })
    }
}

async fn serve_from_environment(
    config: ServeConfig,
    settings: Settings,
) -> Result<(), StartupError> {
    // Local files first, so that a wrong path is reported as such and before any API server call.
    crate::startup::check_local_inputs(&config, &tls::provider())?;
    let listeners = BoundListeners::bind(&config)?;
    let kube_config = load_config(config.kubeconfig.as_deref())
        .await
        .map_err(StartupError::Kubernetes)?;
    serve(
        config,
        settings,
        kube_config,
        listeners,
        server::shutdown_signal(),
    )
    .await
}

/// Serves until `shutdown` completes, then drains and returns.
pub async fn serve(
    config: ServeConfig,
    settings: Settings,
    kube_config: kube::Config,
    bound: BoundListeners,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), StartupError> {
    let readiness = Readiness::new();
    let metrics = Metrics::new().map_err(StartupError::Metrics)?;
    let provider = tls::provider();
    let resolver = Arc::new(CertResolver::new());
    let on_loaded = {
        let readiness = readiness.clone();
        let metrics = metrics.clone();
        Arc::new(move |cert: &tls::LoadedCert| {
            metrics.set_tls_certificate_expiry(cert.info.not_after);
            readiness.set_certificate_loaded(true);
        })
    };
    if config.disable_cert_rotation {
        let mut reloader = CertReloader::new(
            config.webhook_cert_dir.clone(),
            resolver.clone(),
            provider.clone(),
        )
        .on_loaded(on_loaded);
        // A missing certificate is not fatal: the reloader keeps polling and readiness stays false.
        if let Err(e) = reloader.poll_once() {
            tracing::warn!(error = %e, dir = %config.webhook_cert_dir.display(), "no serving certificate yet");
        }
        reloader.spawn();
    } else {
        // Self-managed: the certificate comes from the Secret through the API (no mounted files);
        // readiness follows once it is served and its CA is in the webhook configuration.
        let client = client_from_config(kube_config.clone(), &ClientOptions::for_requests())
            .map_err(StartupError::Kubernetes)?;
        let watch_client = client_from_config(kube_config.clone(), &ClientOptions::for_watches())
            .map_err(StartupError::Kubernetes)?;
        let rotation = certs::RotationConfig::for_namespace(&config.pod_namespace);
        certs::start_rotation(
            client,
            watch_client,
            rotation,
            resolver.clone(),
            provider.clone(),
            on_loaded,
        );
    }
    let tls_config = tls::server_config(
        resolver,
        config.tls_min_version,
        config.client_ca_file.as_deref(),
        provider,
    )
    .map_err(StartupError::Tls)?;

    let admitter = Arc::new(kubernetes_parts(
        &config,
        settings,
        kube_config,
        &readiness,
        &metrics,
    )?);

    let listeners = Listeners {
        webhook: bound.webhook,
        tls: tls_config,
        app: server::router_with_limit(admitter, config.max_in_flight_reviews),
        plain: vec![
            (bound.health, server::health_router(readiness.clone())),
            (bound.metrics, crate::metrics::router(metrics)),
        ],
    };
    tracing::info!(
        version = crate::build_info::VERSION,
        commit = crate::build_info::GIT_COMMIT,
        "azwi-webhook starting"
    );
    for flag in &config.ignored_flags {
        tracing::warn!(
            flag,
            "deprecated upstream flag ignored: it has no effect in this webhook; remove it"
        );
    }
    if let Some(dir) = crate::startup::unread_cert_dir(&config) {
        tracing::warn!(
            dir = %dir.display(),
            "--webhook-cert-dir is not read: certificates are self-managed (served from the Secret); \
             add --disable-cert-rotation to serve the files in it"
        );
    }
    let options = ServeOptions {
        shutdown_delay: config.shutdown_delay,
        // Delay + drain must end inside the pod's terminationGracePeriodSeconds, or the kubelet
        // kills the process instead of letting it exit 0 (checked against
        // --termination-grace-period when given).
        shutdown_grace: config.shutdown_drain_timeout,
        ..ServeOptions::default()
    };
    server::serve(listeners, readiness, options, shutdown)
        .await
        .map_err(StartupError::Server)
}

/// The admission handler with everything it asks the API server: a metadata-only service-account
/// cache (readiness waits for its first sync), API server version discovery (native sidecars), and
/// the identity-binding RBAC check.
fn kubernetes_parts(
    config: &ServeConfig,
    settings: Settings,
    kube_config: kube::Config,
    readiness: &Readiness,
    metrics: &Metrics,
) -> Result<Admitter, StartupError> {
    let requests = client_from_config(kube_config.clone(), &ClientOptions::for_requests())
        .map_err(StartupError::Kubernetes)?;
    let watches = client_from_config(kube_config, &ClientOptions::for_watches())
        .map_err(StartupError::Kubernetes)?;

    let observer: LookupObserver = {
        let metrics = metrics.clone();
        Arc::new(move |source, result| metrics.record_service_account_lookup(source, result))
    };
    let watch_observer: WatchObserver = {
        let metrics = metrics.clone();
        Arc::new(move |activity| metrics.record_service_account_watch(activity))
    };
    let options = CacheOptions {
        observer: Some(observer),
        watch_observer: Some(watch_observer),
        ..CacheOptions::default()
    };
    let (cache, _) = CachedServiceAccounts::spawn_with(
        watches,
        LiveServiceAccounts::new(requests.clone()),
        options,
    );
    let synced = readiness.register("service-account-cache-synced");
    let (watched, metrics_for_gauge) = (cache.clone(), metrics.clone());
    tokio::spawn(async move {
        watched.wait_synced().await;
        synced.set_ready(true);
        tracing::info!(
            service_accounts = watched.len(),
            "service-account cache synced"
        );
        let mut tick = tokio::time::interval(CACHE_GAUGE_INTERVAL);
        loop {
            tick.tick().await;
            metrics_for_gauge.set_service_account_cache_objects(watched.len());
        }
    });

    let (discovery, _) = Discovery::spawn(requests.clone(), DiscoveryOptions::default());
    let identity_binding = settings.identity_binding.is_some();
    let mut admitter = Admitter::new(Arc::new(settings), Arc::new(cache), metrics.clone())
        .with_discovery(discovery);
    if identity_binding && config.rbac_check != RbacCheck::Off {
        let authorizer = CachedAuthorizer::new(
            Arc::new(SubjectAccessReviews::new(requests)),
            AuthzCacheConfig::default(),
        );
        admitter = admitter.with_rbac(RbacStep {
            authorizer: Arc::new(authorizer),
            mode: config.rbac_check,
        });
    }
    Ok(admitter)
}

/// `:PORT` means every interface: `[::]`, or `0.0.0.0` on a kernel without IPv6.
fn bind(flag: &'static str, addr: SocketAddr) -> Result<TcpListener, StartupError> {
    let bound = TcpListener::bind(addr).or_else(|e| match ipv4_fallback(addr) {
        Some(v4) => TcpListener::bind(v4),
        None => Err(e),
    });
    let listener = bound.map_err(|source| StartupError::Bind { flag, addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| StartupError::Bind { flag, addr, source })?;
    Ok(listener)
}
