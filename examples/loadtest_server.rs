//! The servers `benches/load.sh` starts, one per process so each one's RSS is its own:
//!
//! - `apiserver --service-accounts N --out DIR [--namespaces K] [--annotated A]`: the in-process fake
//!   API server of the tests, holding N service accounts (`shop/checkout`, which the fixture pod
//!   uses, plus N-1 others, each with a client-id annotation). With `--namespaces`, the N-1 others
//!   are spread over K namespaces with 20-character names, and only A of all N (default: all) carry
//!   the annotation, as `benches/sa_memory.sh` measures. Writes `DIR/apiserver.url`,
//!   `DIR/apiserver-ca.pem` and `DIR/kubeconfig`, then serves until killed.
//! - `webhook --cert-dir DIR --addr A --health-addr H --metrics-addr M --apiserver DIR [--log-level L]`:
//!   the real `app::serve`, reading service accounts from that fake API server through the real kube
//!   client, logging at `L` (default `info`, as the manifests deploy it; `unset` for warnings only).
//! - `webhook-in-memory --cert-dir DIR --addr A --health-addr H --metrics-addr M --service-accounts N
//!   [--log-level L]`:
//!   CACHE-EQUIVALENT, not `app::serve`: the same server, TLS and `Admitter` wiring, but service
//!   accounts come from an in-memory map of N entries behind the same `ServiceAccounts` trait, as a
//!   warm metadata cache would serve them.
//! - `noop --cert-dir DIR --addr A --health-addr H`: the same server stack (`server::serve`, axum,
//!   rustls, same TLS config) answering every POST with a fixed body as large as the real response
//!   to the typical review.
//! - `parse --cert-dir DIR --addr A --health-addr H`: `noop` that also parses the body with
//!   `serde_json` into `IgnoredAny` before answering: the price of one parse of the review, on top of
//!   the server stack, which the webhook's own work is measured against.
//! - `certs DIR`: serving certificates for `localhost` (`ca.crt`, `tls.crt`, `tls.key`).
//! - `write-review FILE [SIZE]`: writes a bench fixture review (default: the typical one) for h2load.

#[path = "../tests/support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "../benches/fixtures/mod.rs"]
mod fixtures;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::routing::post;
use axum::Router;
use azwi_webhook::admission::Admitter;
use azwi_webhook::app::{self, BoundListeners};
use azwi_webhook::config::{LogLevel, ServeConfig, TlsMinVersion};
use azwi_webhook::k8s::service_accounts::InMemoryServiceAccounts;
use azwi_webhook::metrics::Metrics;
use azwi_webhook::mutate::service_account::ServiceAccountMeta;
use azwi_webhook::mutate::settings::RbacCheck;
use azwi_webhook::server::{self, Listeners, Readiness, ServeOptions};
use azwi_webhook::tls::{self, CertReloader, CertResolver};
use rustls_pki_types::pem::PemObject;

/// The webhook's allocator, for every server here: the references run on what the webhook runs on.
#[global_allocator]
static ALLOCATOR: azwi_webhook::heap::Allocator = azwi_webhook::heap::Allocator;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// `--name value` pairs after the mode.
struct Args(HashMap<String, String>);

impl Args {
    fn parse(raw: &[String]) -> Result<Self, Error> {
        let mut map = HashMap::new();
        let mut it = raw.iter();
        while let Some(flag) = it.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --flag, got {flag}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            map.insert(name.to_owned(), value.clone());
        }
        Ok(Args(map))
    }

    fn get(&self, name: &str) -> Result<&str, Error> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("missing --{name}").into())
    }

    fn addr(&self, name: &str) -> Result<SocketAddr, Error> {
        Ok(self.get(name)?.parse()?)
    }

    fn count(&self, name: &str) -> Result<usize, Error> {
        Ok(self.get(name)?.parse()?)
    }
}

fn main() -> Result<(), Error> {
    azwi_webhook::heap::disable_transparent_huge_pages();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, rest)) = argv.split_first() else {
        return Err(
            "usage: loadtest_server apiserver|webhook|webhook-in-memory|noop|parse|certs|write-review …".into(),
        );
    };
    if mode == "certs" {
        let dir = rest.first().ok_or("certs DIR")?;
        let request = azwi_webhook::certs::DevCerts {
            out: Path::new(dir),
            names: azwi_webhook::certs::ServingNames::dns(&["localhost".to_owned()]),
            ca: None,
            force: true,
        };
        azwi_webhook::certs::write_dev_certs(request, std::time::SystemTime::now())?;
        return Ok(());
    }
    if mode == "write-review" {
        let file = rest.first().ok_or("write-review FILE [SIZE]")?;
        let size = rest.get(1).map_or("typical", String::as_str);
        let (_, body) = fixtures::all()
            .into_iter()
            .find(|(name, _)| *name == size)
            .ok_or_else(|| format!("unknown size {size}"))?;
        std::fs::write(file, body)?;
        return Ok(());
    }
    let args = Args::parse(rest)?;
    // Two workers on two cores, as `app::run` builds it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match mode.as_str() {
            "apiserver" => apiserver(&args).await,
            "webhook" => webhook(&args).await,
            "webhook-in-memory" => webhook_in_memory(&args).await,
            "noop" => noop(&args, BodyUse::Drop).await,
            "parse" => noop(&args, BodyUse::ParseAndSkip).await,
            other => Err(format!("unknown mode {other}").into()),
        }
    })
}

/// The names of the N service accounts: the fixture's own plus N-1 spread over 100 namespaces.
fn service_account_names(n: usize) -> impl Iterator<Item = (String, String)> {
    std::iter::once(("shop".to_owned(), "checkout".to_owned()))
        .chain((1..n).map(|i| (format!("team-{:02}", i % 100), format!("workload-{i:05}"))))
}

fn client_id(i: usize) -> String {
    format!("2b7e3c4d-9f1a-4e5b-8c6d-{i:012}")
}

/// `shop/checkout` plus N-1 service accounts named like real ones (20 characters) in `namespaces`
/// namespaces of 8 characters.
fn spread_service_account_names(
    n: usize,
    namespaces: usize,
) -> impl Iterator<Item = (String, String)> {
    std::iter::once(("shop".to_owned(), "checkout".to_owned())).chain((1..n).map(move |i| {
        (
            format!("ns-{:05}", i % namespaces),
            format!("svc-account-{i:08}"),
        )
    }))
}

async fn apiserver(args: &Args) -> Result<(), Error> {
    let n = args.count("service-accounts")?;
    let out = PathBuf::from(args.get("out")?);
    let names: Box<dyn Iterator<Item = (String, String)>> = match args.0.get("namespaces") {
        Some(k) => {
            let namespaces = k.parse::<usize>()?;
            if namespaces == 0 {
                return Err("--namespaces must be at least 1".into());
            }
            Box::new(spread_service_account_names(n, namespaces))
        }
        None => Box::new(service_account_names(n)),
    };
    let annotated = match args.0.get("annotated") {
        Some(a) => a.parse::<usize>()?,
        None => n,
    };
    let fake = fake_apiserver::FakeApiServer::start().await;
    for (i, (namespace, name)) in names.enumerate() {
        let client_id = client_id(i);
        let annotations: &[(&str, &str)] = if i < annotated {
            &[("azure.workload.identity/client-id", &client_id)]
        } else {
            &[]
        };
        fake.add_service_account(&namespace, &name, annotations);
    }
    std::fs::write(out.join("apiserver-ca.pem"), fake.ca_pem().unwrap_or(""))?;
    std::fs::write(out.join("kubeconfig"), fake.kubeconfig())?;
    // The URL file last: the load script waits for it to appear.
    std::fs::write(out.join("apiserver.url"), fake.url())?;
    eprintln!(
        "fake API server on {} with {n} service accounts",
        fake.url()
    );
    std::future::pending::<()>().await;
    Ok(())
}

fn listener(addr: SocketAddr) -> Result<TcpListener, Error> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn log_level(args: &Args) -> Result<LogLevel, Error> {
    Ok(
        match args.0.get("log-level").map_or("info", String::as_str) {
            "unset" => LogLevel::Unset,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            other => {
                return Err(format!("--log-level {other}: expected unset, info or debug").into())
            }
        },
    )
}

async fn webhook(args: &Args) -> Result<(), Error> {
    // As the real binary: JSON logs on stderr, at the level the manifests deploy unless told.
    let level = log_level(args)?;
    let _logs = azwi_webhook::logging::init(level)?;
    let apiserver = PathBuf::from(args.get("apiserver")?);
    let url = std::fs::read_to_string(apiserver.join("apiserver.url"))?;
    let ca_pem = std::fs::read(apiserver.join("apiserver-ca.pem"))?;
    let ca = rustls_pki_types::CertificateDer::from_pem_slice(&ca_pem)
        .map_err(|e| format!("API server CA: {e}"))?;
    let mut kube_config = kube::Config::new(url.trim().parse()?);
    kube_config.root_cert = Some(vec![ca.to_vec()]);
    let config = ServeConfig {
        webhook_addr: args.addr("addr")?,
        webhook_cert_dir: PathBuf::from(args.get("cert-dir")?),
        disable_cert_rotation: true,
        tls_min_version: TlsMinVersion::V1_2,
        client_ca_file: None,
        health_addr: args.addr("health-addr")?,
        metrics_addr: args.addr("metrics-addr")?,
        log_level: level,
        shutdown_delay: Duration::from_millis(0),
        shutdown_drain_timeout: Duration::from_secs(15),
        rbac_check: RbacCheck::Deny,
        max_in_flight_reviews: azwi_webhook::server::DEFAULT_MAX_IN_FLIGHT,
        pod_namespace: "azure-workload-identity-system".into(),
        kubeconfig: None,
        ignored_flags: Vec::new(),
    };
    let bound = BoundListeners {
        webhook: listener(config.webhook_addr)?,
        health: listener(config.health_addr)?,
        metrics: listener(config.metrics_addr)?,
    };
    app::serve(
        config,
        fixtures::settings(),
        kube_config,
        bound,
        server::shutdown_signal(),
    )
    .await?;
    Ok(())
}

/// The TLS configuration `app::serve` builds, from the certificates in `dir`.
fn tls_config(dir: &Path) -> Result<Arc<rustls::ServerConfig>, Error> {
    let provider = tls::provider();
    let resolver = Arc::new(CertResolver::new());
    let mut reloader = CertReloader::new(dir.to_path_buf(), resolver.clone(), provider.clone());
    reloader.poll_once()?;
    Ok(tls::server_config(
        resolver,
        TlsMinVersion::V1_2,
        None,
        provider,
    )?)
}

/// Serves `app` on the TLS listener with the webhook's own server, options and health listener.
async fn serve_app(args: &Args, app: Router, metrics: Option<Metrics>) -> Result<(), Error> {
    let readiness = Readiness::new();
    readiness.set_certificate_loaded(true);
    let mut plain = vec![(
        listener(args.addr("health-addr")?)?,
        server::health_router(readiness.clone()),
    )];
    if let Some(metrics) = metrics {
        plain.push((
            listener(args.addr("metrics-addr")?)?,
            azwi_webhook::metrics::router(metrics),
        ));
    }
    let listeners = Listeners {
        webhook: listener(args.addr("addr")?)?,
        tls: tls_config(Path::new(args.get("cert-dir")?))?,
        app,
        plain,
    };
    let options = ServeOptions {
        shutdown_delay: Duration::from_millis(0),
        ..ServeOptions::default()
    };
    server::serve(listeners, readiness, options, server::shutdown_signal()).await?;
    Ok(())
}

async fn webhook_in_memory(args: &Args) -> Result<(), Error> {
    let _logs = azwi_webhook::logging::init(log_level(args)?)?;
    let n = args.count("service-accounts")?;
    let accounts = service_account_names(n)
        .enumerate()
        .map(|(i, (namespace, name))| {
            let annotations = [("azure.workload.identity/client-id".to_owned(), client_id(i))]
                .into_iter()
                .collect();
            ServiceAccountMeta {
                namespace,
                name,
                annotations,
            }
        })
        .collect::<InMemoryServiceAccounts>();
    let metrics = Metrics::new()?;
    let admitter = Arc::new(Admitter::new(
        Arc::new(fixtures::settings()),
        Arc::new(accounts),
        metrics.clone(),
    ));
    serve_app(args, server::router(admitter), Some(metrics)).await
}

/// What the no-op servers do with the request body before answering.
#[derive(Clone, Copy)]
enum BodyUse {
    Drop,
    ParseAndSkip,
}

async fn noop(args: &Args, body_use: BodyUse) -> Result<(), Error> {
    // The real answer to the typical review, computed once: same size, same content type.
    let admitter = Admitter::new(
        Arc::new(fixtures::settings()),
        Arc::new(InMemoryServiceAccounts::from_iter([
            fixtures::service_account(),
        ])),
        Metrics::new()?,
    );
    let reply = Bytes::from(admitter.admit(&fixtures::typical_review(), None).await.body);
    eprintln!("noop server answers {} bytes", reply.len());
    let app = Router::new().route(
        server::MUTATE_PATH,
        post(move |body: Bytes| {
            let reply = reply.clone();
            async move {
                // The body is read in full, as the real route does.
                if let BodyUse::ParseAndSkip = body_use {
                    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&body) {
                        let message = format!("not JSON: {e}");
                        return (
                            StatusCode::BAD_REQUEST,
                            [(header::CONTENT_TYPE, "text/plain")],
                            Bytes::from(message),
                        );
                    }
                }
                drop(body);
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    reply,
                )
            }
        }),
    );
    serve_app(args, app, None).await
}
