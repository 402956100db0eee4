//! Test-time PKI and a small HTTPS client, shared by integration tests.
//!
//! Include with `#[path = "support/tls.rs"] mod tls_support;`. Certificates are generated with
//! rcgen into temp dirs on every run: nothing is checked in, nothing expires.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tempfile::TempDir;

/// A test CA able to issue server and client certificates.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// PEM of the CA certificate (trust anchor for clients, or `--client-ca-file`).
    pub pem: String,
}

/// An issued certificate and its key.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("ca key");
        let cert = params.self_signed(&key).expect("ca cert");
        let pem = cert.pem();
        Self { cert, key, pem }
    }

    /// A serving certificate for `dns` names (IP literals become IP SANs).
    pub fn issue_server(&self, dns: &[&str]) -> Leaf {
        self.issue(
            dns,
            ExtendedKeyUsagePurpose::ServerAuth,
            dns.first().copied().unwrap_or("server"),
        )
    }

    /// A client certificate with common name `cn`.
    pub fn issue_client(&self, cn: &str) -> Leaf {
        self.issue(&[], ExtendedKeyUsagePurpose::ClientAuth, cn)
    }

    fn issue(&self, dns: &[&str], eku: ExtendedKeyUsagePurpose, cn: &str) -> Leaf {
        let names: Vec<String> = dns.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![eku];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("leaf cert");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }
}

/// A CA, a serving leaf, and a temp dir holding `ca.crt`, `tls.crt`, `tls.key`.
pub struct TestPki {
    pub dir: TempDir,
    pub ca: TestCa,
    pub leaf: Leaf,
}

impl TestPki {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }
}

pub fn generate_ca_and_leaf(dns: &[&str]) -> TestPki {
    let ca = TestCa::new("azwi test ca");
    let leaf = ca.issue_server(dns);
    let dir = TempDir::new().expect("tempdir");
    std::fs::write(dir.path().join("ca.crt"), &ca.pem).expect("write ca");
    std::fs::write(dir.path().join("tls.crt"), &leaf.cert_pem).expect("write crt");
    std::fs::write(dir.path().join("tls.key"), &leaf.key_pem).expect("write key");
    TestPki { dir, ca, leaf }
}

/// A directory laid out like a Kubernetes Secret volume:
/// `..<ts>/tls.crt`, `..data -> ..<ts>`, `tls.crt -> ..data/tls.crt` (same for `tls.key`).
pub struct SecretVolume {
    dir: TempDir,
    generation: u32,
}

impl SecretVolume {
    pub fn new(cert_pem: &str, key_pem: &str) -> Self {
        let dir = TempDir::new().expect("tempdir");
        let mut vol = Self { dir, generation: 0 };
        let first = vol.write_generation(cert_pem, key_pem);
        std::os::unix::fs::symlink(&first, vol.path().join("..data")).expect("..data");
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(Path::new("..data").join(name), vol.path().join(name))
                .expect("file link");
        }
        vol
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Publishes new contents the way the kubelet does: a new timestamped dir, then an atomic
    /// rename of a fresh symlink over `..data`.
    pub fn update(&mut self, cert_pem: &str, key_pem: &str) {
        let next = self.write_generation(cert_pem, key_pem);
        let tmp = self.path().join("..data_tmp");
        std::os::unix::fs::symlink(&next, &tmp).expect("tmp link");
        std::fs::rename(&tmp, self.path().join("..data")).expect("swap ..data");
    }

    fn write_generation(&mut self, cert_pem: &str, key_pem: &str) -> String {
        self.generation += 1;
        let name = format!(
            "..2026_01_01_00_00_{:02}.{}",
            self.generation,
            std::process::id()
        );
        let gen_dir = self.path().join(&name);
        std::fs::create_dir(&gen_dir).expect("generation dir");
        std::fs::write(gen_dir.join("tls.crt"), cert_pem).expect("crt");
        std::fs::write(gen_dir.join("tls.key"), key_pem).expect("key");
        name
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Http {
    V1,
    V2,
}

/// How the test client connects.
#[derive(Clone)]
pub struct ClientOpts {
    pub ca_pem: String,
    pub http: Http,
    pub server_name: String,
    pub client_cert: Option<Leaf>,
    pub tls12_only: bool,
}

impl ClientOpts {
    pub fn new(ca_pem: &str, http: Http) -> Self {
        Self {
            ca_pem: ca_pem.to_string(),
            http,
            server_name: "localhost".to_string(),
            client_cert: None,
            tls12_only: false,
        }
    }
}

/// What came back, plus TLS facts worth asserting.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    pub alpn: Option<Vec<u8>>,
    pub peer_leaf_der: Option<Vec<u8>>,
}

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn client_config(opts: &ClientOpts) -> Result<rustls::ClientConfig, BoxError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(opts.ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if opts.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_root_certificates(roots);
    let mut config = match &opts.client_cert {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            let chain = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    config.alpn_protocols = match opts.http {
        Http::V2 => vec![b"h2".to_vec()],
        Http::V1 => vec![b"http/1.1".to_vec()],
    };
    Ok(config)
}

/// Connects and completes the TLS handshake.
pub async fn connect(
    addr: SocketAddr,
    opts: &ClientOpts,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, BoxError> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(opts)?));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(opts.server_name.clone())?;
    Ok(connector.connect(name, tcp).await?)
}

/// One request on a fresh connection.
pub async fn request(
    addr: SocketAddr,
    opts: &ClientOpts,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Result<Reply, BoxError> {
    let tls = connect(addr, opts).await?;
    let (_, conn) = tls.get_ref();
    let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
    let peer_leaf_der = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("https://{}{}", opts.server_name, path))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let io = TokioIo::new(tls);
    let resp = match opts.http {
        Http::V2 => {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(conn);
            sender.send_request(req).await?
        }
        Http::V1 => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(conn);
            sender.send_request(req).await?
        }
    };
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.into_body().collect().await?.to_bytes().to_vec();
    Ok(Reply {
        status,
        content_type,
        body,
        alpn,
        peer_leaf_der,
    })
}

/// `POST path` with `body`; returns status, body and the negotiated ALPN protocol.
pub async fn post(
    addr: SocketAddr,
    ca_pem: &str,
    path: &str,
    body: &[u8],
    http: Http,
) -> Result<(u16, Vec<u8>, Option<Vec<u8>>), BoxError> {
    let reply = request(
        addr,
        &ClientOpts::new(ca_pem, http),
        "POST",
        path,
        body.to_vec(),
    )
    .await?;
    Ok((reply.status, reply.body, reply.alpn))
}

/// Plain-HTTP GET (health listener): status and body text.
pub async fn get_plain(addr: SocketAddr, path: &str) -> Result<(u16, String), BoxError> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Sum of the samples of `family` in a Prometheus text scrape whose labels include every
/// `label="value"` of `labels` (all of the family's samples when `labels` is empty).
pub fn metric_sum(text: &str, family: &str, labels: &[&str]) -> u64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Scrapes `GET /metrics` on the plain-HTTP metrics listener at `addr` and sums like [`metric_sum`].
pub async fn scrape_metric(addr: SocketAddr, family: &str, labels: &[&str]) -> u64 {
    let (status, text) = get_plain(addr, "/metrics").await.expect("scrape /metrics");
    assert_eq!(status, 200, "{text}");
    metric_sum(&text, family, labels)
}

/// A running `serve()` bound to loopback ports, with an injectable shutdown trigger.
pub struct TestServer {
    pub addr: SocketAddr,
    pub health_addr: SocketAddr,
    pub readiness: azwi_webhook::server::Readiness,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<Result<(), azwi_webhook::server::ServerError>>,
}

impl TestServer {
    /// Serves `app` over TLS with `tls`, and the health router on a second port.
    pub fn start(
        app: axum::Router,
        tls: Arc<rustls::ServerConfig>,
        readiness: azwi_webhook::server::Readiness,
        options: azwi_webhook::server::ServeOptions,
    ) -> Self {
        let webhook = std::net::TcpListener::bind("127.0.0.1:0").expect("bind webhook");
        let health = std::net::TcpListener::bind("127.0.0.1:0").expect("bind health");
        let addr = webhook.local_addr().expect("addr");
        let health_addr = health.local_addr().expect("addr");
        let listeners = azwi_webhook::server::Listeners {
            webhook,
            tls,
            app,
            plain: vec![(
                health,
                azwi_webhook::server::health_router(readiness.clone()),
            )],
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(azwi_webhook::server::serve(
            listeners,
            readiness.clone(),
            options,
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            addr,
            health_addr,
            readiness,
            shutdown: Some(tx),
            task,
        }
    }

    /// Fires the shutdown trigger (what SIGTERM does in production).
    pub fn trigger_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Serves `pki`'s leaf from a resolver loaded once, with the given minimum TLS version and
/// optional client CA.
pub fn static_tls(
    pki: &TestPki,
    min: azwi_webhook::tls::TlsMinVersion,
    client_ca: Option<&Path>,
) -> Arc<rustls::ServerConfig> {
    use azwi_webhook::tls;
    let provider = tls::provider();
    let resolver = Arc::new(tls::CertResolver::new());
    let loaded = tls::load_dir(pki.path(), &provider).expect("load test cert");
    resolver.set(&loaded);
    tls::server_config(resolver, min, client_ca, provider).expect("server config")
}

/// Answers 200 with the request body unchanged.
pub struct Echo;

impl azwi_webhook::review::ReviewHandler for Echo {
    fn refuse(
        &self,
        refusal: azwi_webhook::review::Refusal,
        message: &str,
    ) -> azwi_webhook::review::ReviewReply {
        azwi_webhook::admission::refusal_reply(refusal, message)
    }

    fn review(
        &self,
        body: Bytes,
        _budget: Option<std::time::Duration>,
    ) -> futures::future::BoxFuture<'_, azwi_webhook::review::ReviewReply> {
        Box::pin(async move {
            azwi_webhook::review::ReviewReply {
                status: 200,
                body: body.to_vec(),
            }
        })
    }
}

/// Polls `condition` until it holds, failing the test naming `what` when `deadline` passes first.
pub async fn assert_eventually(
    deadline: std::time::Duration,
    what: &str,
    mut condition: impl FnMut() -> bool,
) {
    let held = eventually(deadline, || std::future::ready(condition())).await;
    assert!(held, "timed out waiting for {what}");
}

/// Polls `check` every 20 ms until it returns true or `deadline` passes.
pub async fn eventually<F, Fut>(deadline: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
