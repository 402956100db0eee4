//! Rotation seen from TLS clients: a real TLS server serving through the rotator's resolver, and clients
//! that trust the `caBundle` as published in the (fake) MutatingWebhookConfiguration at each moment, as the
//! API server does. Lifetimes are shrunk to seconds so leaf renewals and a full CA rotation happen during
//! the test.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/rotation.rs"]
mod rotation;
#[path = "support/tls.rs"]
mod tls_support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use azwi_webhook::server::{router, Readiness, ServeOptions};
use azwi_webhook::tls::{self, TlsMinVersion};
use fake_apiserver::FakeApiServer;
use rotation::{cert_count, fast_config, tiny_policy, Replica, MWC, SERVER_NAME};
use tls_support::{eventually, request, ClientOpts, Echo, Http, TestServer};

struct Setup {
    fake: Arc<FakeApiServer>,
    server: TestServer,
    rotator: tokio::task::JoinHandle<()>,
}

async fn start(policy: azwi_webhook::certs::Policy) -> Setup {
    let fake = Arc::new(FakeApiServer::start().await);
    fake.add_webhook_configuration(MWC, &["mutation.azure-workload-identity.io"]);
    let mut config = fast_config();
    config.policy = policy;
    let replica = Replica::new(&fake, config);
    let loaded = replica.loaded.clone();
    let server_tls = tls::server_config(
        replica.resolver.clone(),
        TlsMinVersion::V1_3,
        None,
        tls::provider(),
    )
    .expect("server config");
    let server = TestServer::start(
        router(Arc::new(Echo)),
        server_tls,
        Readiness::new(),
        ServeOptions::default(),
    );
    let rotator = replica.rotator.spawn();
    let ready = eventually(Duration::from_secs(5), || async {
        loaded.load(Ordering::SeqCst) >= 1
    })
    .await;
    assert!(ready, "no certificate published");
    Setup {
        fake,
        server,
        rotator,
    }
}

fn published(fake: &FakeApiServer) -> Vec<u8> {
    fake.ca_bundles(MWC)
        .first()
        .cloned()
        .flatten()
        .unwrap_or_default()
}

/// One fresh connection (full handshake) and one request, trusting exactly `bundle`.
async fn call(addr: SocketAddr, bundle: &[u8]) -> Result<Vec<u8>, String> {
    let mut opts = ClientOpts::new(&String::from_utf8_lossy(bundle), Http::V1);
    opts.server_name = SERVER_NAME.to_owned();
    let reply = request(addr, &opts, "POST", "/mutate-v1-pod", b"{}".to_vec())
        .await
        .map_err(|e| e.to_string())?;
    if reply.status != 200 {
        return Err(format!("HTTP {}", reply.status));
    }
    reply
        .peer_leaf_der
        .ok_or_else(|| "no peer certificate".to_owned())
}

#[derive(Default)]
struct LoadStats {
    ok: u64,
    failed: Vec<String>,
    leaves: HashSet<Vec<u8>>,
    bundles: HashSet<Vec<u8>>,
    max_cas: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaf_and_ca_rotation_under_tls_load_have_no_failed_handshakes() {
    // Leaf 3 s (renewed every ~2 s); CA 14 s, a new one published with 8 s left (t≈6 s), the leaf moves
    // to it 2 s later, the old CA is dropped 2 s after that.
    let setup = start(tiny_policy(3, 14, 8, 2)).await;
    let initial_bundle = published(&setup.fake);
    let addr = setup.server.addr;
    let stats = Arc::new(Mutex::new(LoadStats::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (fake, stats, stop) = (setup.fake.clone(), stats.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    // Re-read per connection, like the API server's informer would see it.
                    let bundle = published(&fake);
                    let result = call(addr, &bundle).await;
                    let mut stats = stats.lock().unwrap_or_else(|p| p.into_inner());
                    stats.max_cas = stats.max_cas.max(cert_count(&bundle));
                    stats.bundles.insert(bundle);
                    match result {
                        Ok(leaf) => {
                            stats.ok += 1;
                            stats.leaves.insert(leaf);
                        }
                        Err(e) => stats.failed.push(e),
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    // The load lasts until the rotation has completed (a single CA published that is not the first), so a
    // slow machine stretches the test instead of cutting the rotation short.
    let fake = &setup.fake;
    let rotated = eventually(Duration::from_secs(40), || async {
        let bundle = published(fake);
        cert_count(&bundle) == 1 && bundle != initial_bundle
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client task");
    }
    setup.rotator.abort();
    let final_bundle = published(&setup.fake);
    let stats = stats.lock().unwrap_or_else(|p| p.into_inner());
    eprintln!(
        "TLS load over {:?}: {} ok, {} failed; {} distinct serving certificates, {} distinct caBundles, \
         at most {} CAs published",
        started.elapsed(),
        stats.ok,
        stats.failed.len(),
        stats.leaves.len(),
        stats.bundles.len(),
        stats.max_cas
    );
    assert!(rotated, "the CA rotation did not complete within 40 s");
    assert!(
        stats.failed.is_empty(),
        "failures: {:?}",
        &stats.failed[..stats.failed.len().min(5)]
    );
    assert!(
        stats.ok > 100,
        "too little load to mean anything: {}",
        stats.ok
    );
    assert!(
        stats.leaves.len() >= 4,
        "leaf rotated only {} times",
        stats.leaves.len() - 1
    );
    assert_eq!(
        stats.max_cas, 2,
        "old and new CA published together during the overlap"
    );
    assert_eq!(
        cert_count(&final_bundle),
        1,
        "old CA dropped after the overlap"
    );
    assert_ne!(final_bundle, initial_bundle, "the CA was rotated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_overlap_keeps_old_bundle_clients_working_until_the_leaf_switches() {
    // CA 21 s, new CA with 9 s left (t≈12 s), overlap 3 s: the leaf moves at t≈15 s, the old CA is
    // dropped at t≈18 s, before it expires and before the next rotation (t≈24 s). Each overlap must
    // hold a poll and a few handshakes on a loaded machine, and starts from a notBefore truncated to
    // whole seconds: hence seconds, not fractions. The leaf is long-lived (capped by its CA).
    let setup = start(tiny_policy(60, 21, 9, 3)).await;
    let addr = setup.server.addr;
    let old_bundle = published(&setup.fake);
    assert_eq!(cert_count(&old_bundle), 1);
    call(addr, &old_bundle).await.expect("initial handshake");

    let fake = &setup.fake;
    let both = eventually(Duration::from_secs(20), || async {
        cert_count(&published(fake)) == 2
    })
    .await;
    assert!(both, "new CA never published beside the old");
    let overlap_bundle = published(fake);
    assert!(
        overlap_bundle.starts_with(&old_bundle),
        "old CA still first"
    );
    call(addr, &old_bundle)
        .await
        .expect("during the overlap a client with only the old bundle still connects");
    call(addr, &overlap_bundle)
        .await
        .expect("and so does one with both");

    let switched = eventually(Duration::from_secs(12), || async {
        call(addr, &old_bundle).await.is_err()
    })
    .await;
    assert!(switched, "the leaf never moved to the new CA");
    let bundle = published(fake);
    assert_eq!(
        cert_count(&bundle),
        2,
        "old CA kept for a while after the leaf switched"
    );
    call(addr, &bundle)
        .await
        .expect("current bundle works after the switch");
    let new_ca_only = &bundle[old_bundle.len()..];
    call(addr, new_ca_only)
        .await
        .expect("new CA alone works after the switch");

    let dropped = eventually(Duration::from_secs(12), || async {
        cert_count(&published(fake)) == 1
    })
    .await;
    assert!(dropped, "old CA never dropped");
    let final_bundle = published(fake);
    assert_eq!(final_bundle, new_ca_only);
    call(addr, &final_bundle).await.expect("final bundle works");
    setup.rotator.abort();
}
