//! Certificate hot reload from a directory laid out like a Kubernetes Secret volume.

#[path = "support/tls.rs"]
mod tls_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use azwi_webhook::server::{router, Readiness, ServeOptions};
use azwi_webhook::tls::{self, CertReloader, CertResolver, TlsError, TlsMinVersion};
use tls_support::*;

const DEADLINE: Duration = Duration::from_secs(10);

struct Fixture {
    ca: TestCa,
    volume: SecretVolume,
    resolver: Arc<CertResolver>,
    loads: Arc<AtomicUsize>,
    errors: Arc<AtomicUsize>,
    server: TestServer,
    reloader: tokio::task::JoinHandle<()>,
}

async fn start() -> (Fixture, Leaf) {
    let ca = TestCa::new("reload ca");
    let first = ca.issue_server(&["localhost"]);
    let volume = SecretVolume::new(&first.cert_pem, &first.key_pem);
    let provider = tls::provider();
    let resolver = Arc::new(CertResolver::new());
    let loads = Arc::new(AtomicUsize::new(0));
    let counter = loads.clone();
    let errors = Arc::new(AtomicUsize::new(0));
    let error_counter = errors.clone();
    let mut reloader = CertReloader::new(volume.path(), resolver.clone(), provider.clone())
        .with_interval(Duration::from_millis(50))
        .on_loaded(Arc::new(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        }))
        .on_error(Arc::new(move |_| {
            error_counter.fetch_add(1, Ordering::SeqCst);
        }));
    assert!(reloader.poll_once().unwrap(), "first load");
    let reloader = reloader.spawn();
    let config = tls::server_config(resolver.clone(), TlsMinVersion::V1_3, None, provider).unwrap();
    let server = TestServer::start(
        router(Arc::new(Echo)),
        config,
        Readiness::new(),
        ServeOptions::default(),
    );
    (
        Fixture {
            ca,
            volume,
            resolver,
            loads,
            errors,
            server,
            reloader,
        },
        first,
    )
}

async fn served_leaf(f: &Fixture) -> Vec<u8> {
    let opts = ClientOpts::new(&f.ca.pem, Http::V2);
    let reply = request(
        f.server.addr,
        &opts,
        "POST",
        "/mutate-v1-pod",
        b"{}".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
    reply.peer_leaf_der.unwrap()
}

#[tokio::test]
async fn swapped_data_symlink_is_served_within_deadline() {
    let (mut f, first) = start().await;
    assert_eq!(served_leaf(&f).await, first.der);

    let second = f.ca.issue_server(&["localhost"]);
    f.volume.update(&second.cert_pem, &second.key_pem);
    let f = &f;
    let want = second.der.clone();
    assert!(
        eventually(DEADLINE, || {
            let want = want.clone();
            async move { served_leaf(f).await == want }
        })
        .await,
        "new certificate not served in time"
    );
    assert_eq!(f.loads.load(Ordering::SeqCst), 2);
    f.reloader.abort();
}

#[tokio::test]
async fn key_mismatch_keeps_the_old_certificate() {
    let (mut f, first) = start().await;
    let second = f.ca.issue_server(&["localhost"]);
    let other = f.ca.issue_server(&["localhost"]);
    // New certificate with somebody else's key: must be refused.
    f.volume.update(&second.cert_pem, &other.key_pem);

    // The same files polled directly report the mismatch...
    let mut probe = CertReloader::new(
        f.volume.path(),
        Arc::new(CertResolver::new()),
        tls::provider(),
    );
    assert!(matches!(
        probe.poll_once(),
        Err(TlsError::KeyMismatch { .. })
    ));

    // ...and once the running reloader has rejected them, the old certificate is still served.
    let errors = f.errors.clone();
    assert!(
        eventually(DEADLINE, || {
            let errors = errors.clone();
            async move { errors.load(Ordering::SeqCst) >= 1 }
        })
        .await
    );
    assert_eq!(served_leaf(&f).await, first.der);
    // A later good update is still picked up.
    let before = f.resolver.not_after();
    let third = f.ca.issue_server(&["localhost"]);
    f.volume.update(&third.cert_pem, &third.key_pem);
    let fr = &f;
    let want = third.der.clone();
    assert!(
        eventually(DEADLINE, || {
            let want = want.clone();
            async move { served_leaf(fr).await == want }
        })
        .await
    );
    assert_eq!(
        f.loads.load(Ordering::SeqCst),
        2,
        "the mismatched pair must never load"
    );
    assert!(before.is_some());
    f.reloader.abort();
}

#[test]
fn garbage_and_missing_files_are_errors_that_keep_the_old_certificate() {
    let ca = TestCa::new("ca");
    let leaf = ca.issue_server(&["localhost"]);
    let mut volume = SecretVolume::new(&leaf.cert_pem, &leaf.key_pem);
    let resolver = Arc::new(CertResolver::new());
    let mut reloader = CertReloader::new(volume.path(), resolver.clone(), tls::provider());
    assert!(reloader.poll_once().unwrap());
    assert!(
        !reloader.poll_once().unwrap(),
        "unchanged contents are not reloaded"
    );
    let served = resolver.current().unwrap();

    volume.update("garbage", &leaf.key_pem);
    assert!(matches!(
        reloader.poll_once(),
        Err(TlsError::NoCertificate { .. })
    ));
    volume.update(&leaf.cert_pem, "garbage");
    assert!(reloader.poll_once().is_err());
    std::fs::remove_file(volume.path().join("tls.key")).unwrap();
    assert!(matches!(reloader.poll_once(), Err(TlsError::Read { .. })));
    assert!(Arc::ptr_eq(&served, &resolver.current().unwrap()));
}

#[test]
fn chain_with_intermediate_is_accepted() {
    let pki = generate_ca_and_leaf(&["localhost"]);
    let chain = format!("{}{}", pki.leaf.cert_pem, pki.ca.pem);
    std::fs::write(pki.path().join("tls.crt"), chain).unwrap();
    let loaded = tls::load_dir(pki.path(), &tls::provider()).unwrap();
    assert_eq!(loaded.info.chain_len, 2);
    assert_eq!(loaded.key.cert[0].as_ref(), &pki.leaf.der[..]);
}
