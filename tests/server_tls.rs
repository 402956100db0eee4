//! The webhook over real TLS on loopback: ALPN, both HTTP versions, client certificates, minimum
//! TLS version, and readiness tied to the certificate.

#[path = "support/tls.rs"]
mod tls_support;

use std::sync::Arc;
use std::time::Duration;

use azwi_webhook::server::{router, Readiness, ServeOptions};
use azwi_webhook::tls::{self, CertReloader, CertResolver, TlsMinVersion};
use tls_support::*;

const DEADLINE: Duration = Duration::from_secs(10);

fn quick_options() -> ServeOptions {
    ServeOptions {
        shutdown_delay: Duration::ZERO,
        shutdown_grace: Duration::from_secs(5),
        ..ServeOptions::default()
    }
}

fn start_static(
    pki: &TestPki,
    min: TlsMinVersion,
    client_ca: Option<&std::path::Path>,
) -> TestServer {
    TestServer::start(
        router(Arc::new(Echo)),
        static_tls(pki, min, client_ca),
        Readiness::new(),
        quick_options(),
    )
}

#[tokio::test]
async fn http2_is_negotiated_with_alpn_h2() {
    let pki = generate_ca_and_leaf(&["localhost"]);
    let server = start_static(&pki, TlsMinVersion::V1_3, None);
    let (status, body, alpn) = post(
        server.addr,
        &pki.ca.pem,
        "/mutate-v1-pod?timeout=10s",
        b"{\"x\":1}",
        Http::V2,
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, b"{\"x\":1}");
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn http1_client_is_served() {
    let pki = generate_ca_and_leaf(&["localhost"]);
    let server = start_static(&pki, TlsMinVersion::V1_3, None);
    let reply = request(
        server.addr,
        &ClientOpts::new(&pki.ca.pem, Http::V1),
        "POST",
        "/mutate-v1-pod",
        b"{}".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type.as_deref(), Some("application/json"));
    assert_eq!(reply.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(reply.body, b"{}");
}

#[tokio::test]
async fn unknown_path_over_tls_is_404() {
    let pki = generate_ca_and_leaf(&["localhost"]);
    let server = start_static(&pki, TlsMinVersion::V1_3, None);
    let (status, _, _) = post(server.addr, &pki.ca.pem, "/validate", b"{}", Http::V2)
        .await
        .unwrap();
    assert_eq!(status, 404);
}

#[tokio::test]
async fn tls13_minimum_refuses_tls12_only_client() {
    let pki = generate_ca_and_leaf(&["localhost"]);
    let server = start_static(&pki, TlsMinVersion::V1_3, None);
    let mut opts = ClientOpts::new(&pki.ca.pem, Http::V2);
    opts.tls12_only = true;
    assert!(connect(server.addr, &opts).await.is_err());
}

#[tokio::test]
async fn tls12_minimum_accepts_tls12_client() {
    let pki = generate_ca_and_leaf(&["localhost"]);
    let server = start_static(&pki, TlsMinVersion::V1_2, None);
    let mut opts = ClientOpts::new(&pki.ca.pem, Http::V2);
    opts.tls12_only = true;
    let reply = request(server.addr, &opts, "POST", "/mutate-v1-pod", b"{}".to_vec())
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn client_ca_requires_a_client_certificate() {
    let pki = generate_ca_and_leaf(&["localhost"]);
    let server = start_static(&pki, TlsMinVersion::V1_3, Some(&pki.ca_path()));

    let anonymous = ClientOpts::new(&pki.ca.pem, Http::V2);
    let refused = request(
        server.addr,
        &anonymous,
        "POST",
        "/mutate-v1-pod",
        b"{}".to_vec(),
    )
    .await;
    assert!(refused.is_err(), "client without certificate was served");

    let stranger_ca = TestCa::new("someone else");
    let mut stranger = ClientOpts::new(&pki.ca.pem, Http::V2);
    stranger.client_cert = Some(stranger_ca.issue_client("kube-apiserver"));
    let refused = request(
        server.addr,
        &stranger,
        "POST",
        "/mutate-v1-pod",
        b"{}".to_vec(),
    )
    .await;
    assert!(
        refused.is_err(),
        "client with a certificate from another CA was served"
    );

    let mut trusted = ClientOpts::new(&pki.ca.pem, Http::V2);
    trusted.client_cert = Some(pki.ca.issue_client("kube-apiserver"));
    let reply = request(
        server.addr,
        &trusted,
        "POST",
        "/mutate-v1-pod",
        b"{}".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn no_certificate_yet_fails_handshakes_and_readiness_until_one_loads() {
    let pki = generate_ca_and_leaf(&["localhost"]);
    let cert_dir = tempfile::TempDir::new().unwrap();
    let provider = tls::provider();
    let resolver = Arc::new(CertResolver::new());
    let readiness = Readiness::new();
    let marker = readiness.clone();
    let reloader = CertReloader::new(cert_dir.path(), resolver.clone(), provider.clone())
        .with_interval(Duration::from_millis(50))
        .on_loaded(Arc::new(move |_| marker.set_certificate_loaded(true)))
        .spawn();
    let config = tls::server_config(resolver.clone(), TlsMinVersion::V1_3, None, provider).unwrap();
    let server = TestServer::start(
        router(Arc::new(Echo)),
        config,
        readiness.clone(),
        quick_options(),
    );

    // Serving but certless: readiness says why, handshakes fail, nothing panics.
    assert!(
        eventually(DEADLINE, || async {
            !readiness.pending().iter().any(|p| p.contains("listener"))
        })
        .await
    );
    let (status, text) = get_plain(server.health_addr, "/readyz").await.unwrap();
    assert_eq!(status, 503);
    assert!(text.contains("certificate"), "{text}");
    assert!(
        connect(server.addr, &ClientOpts::new(&pki.ca.pem, Http::V2))
            .await
            .is_err()
    );
    assert_eq!(resolver.not_after(), None);

    std::fs::write(cert_dir.path().join("tls.crt"), &pki.leaf.cert_pem).unwrap();
    std::fs::write(cert_dir.path().join("tls.key"), &pki.leaf.key_pem).unwrap();
    let health = server.health_addr;
    assert!(
        eventually(DEADLINE, || async move {
            matches!(get_plain(health, "/readyz").await, Ok((200, _)))
        })
        .await
    );
    let (status, _, _) = post(server.addr, &pki.ca.pem, "/mutate-v1-pod", b"{}", Http::V2)
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(resolver.not_after().unwrap() > 1_700_000_000);
    reloader.abort();
}

#[test]
fn unusable_client_ca_file_is_a_clear_error() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("ca.crt");
    std::fs::write(&path, "not a certificate").unwrap();
    let err = tls::server_config(
        Arc::new(CertResolver::new()),
        TlsMinVersion::V1_3,
        Some(&path),
        tls::provider(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("ca.crt"), "{err}");
    let missing = dir.path().join("missing.crt");
    let err = tls::server_config(
        Arc::new(CertResolver::new()),
        TlsMinVersion::V1_3,
        Some(&missing),
        tls::provider(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("missing.crt"), "{err}");
}

#[tokio::test]
async fn oversized_body_over_tls_is_413_on_both_http_versions() {
    let pki = generate_ca_and_leaf(&["localhost"]);
    let server = start_static(&pki, TlsMinVersion::V1_3, None);
    let big = vec![b' '; azwi_webhook::server::MAX_BODY_BYTES + 1];
    for http in [Http::V2, Http::V1] {
        let reply = request(
            server.addr,
            &ClientOpts::new(&pki.ca.pem, http),
            "POST",
            "/mutate-v1-pod",
            big.clone(),
        )
        .await
        .unwrap();
        assert_eq!(reply.status, 413, "{http:?}");
    }
}
