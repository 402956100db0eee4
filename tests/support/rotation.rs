//! Helpers for certificate-rotation tests: a rotator wired to the fake API server with short intervals.
//! Include with `#[path = "support/rotation.rs"] mod rotation;` after `fake_apiserver`.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use azwi_webhook::certs::{Policy, RotationConfig, Rotator};
use azwi_webhook::k8s::client::{client_from_config, ClientOptions};
use azwi_webhook::tls::{self, CertResolver};

use super::fake_apiserver::FakeApiServer;

pub const NAMESPACE: &str = "azure-workload-identity-system";
pub const SECRET: &str = "azure-wi-webhook-server-cert";
pub const MWC: &str = "azure-wi-webhook-mutating-webhook-configuration";
pub const SERVER_NAME: &str = "azure-wi-webhook-webhook-service.azure-workload-identity-system.svc";

/// Shipped names, production lifetimes, checks every 100 ms.
pub fn fast_config() -> RotationConfig {
    let mut config = RotationConfig::for_namespace(NAMESPACE);
    config.check_interval = Duration::from_millis(100);
    config.retry_interval = Duration::from_millis(100);
    config
}

/// Lifetimes in seconds: leaf `leaf` s (renewed with a third left), CA `ca` s (a new one published with
/// `ca_renew` s left), `overlap` s of overlap.
pub fn tiny_policy(leaf: u64, ca: u64, ca_renew: u64, overlap: u64) -> Policy {
    Policy {
        leaf_validity: Duration::from_secs(leaf),
        ca_validity: Duration::from_secs(ca),
        ca_renew_before: Duration::from_secs(ca_renew),
        leaf_renew_min: Duration::ZERO,
        ca_overlap: Duration::from_secs(overlap),
        ..Policy::default()
    }
}

/// One replica: its rotator, the resolver it feeds, and how often `on_loaded` ran.
pub struct Replica {
    pub rotator: Rotator,
    pub resolver: Arc<CertResolver>,
    pub loaded: Arc<AtomicUsize>,
}

impl Replica {
    pub fn new(fake: &FakeApiServer, config: RotationConfig) -> Self {
        let client =
            client_from_config(fake.config(), &ClientOptions::for_requests()).expect("kube client");
        let watch_client =
            client_from_config(fake.config(), &ClientOptions::for_watches()).expect("kube client");
        let resolver = Arc::new(CertResolver::new());
        let loaded = Arc::new(AtomicUsize::new(0));
        let counter = loaded.clone();
        let rotator = Rotator::new(
            client,
            watch_client,
            config,
            resolver.clone(),
            tls::provider(),
        )
        .on_loaded(Arc::new(move |_: &tls::LoadedCert| {
            counter.fetch_add(1, Ordering::SeqCst);
        }));
        Self {
            rotator,
            resolver,
            loaded,
        }
    }

    pub fn loaded_count(&self) -> usize {
        self.loaded.load(Ordering::SeqCst)
    }

    /// DER of the leaf currently served.
    pub fn served_leaf(&self) -> Option<Vec<u8>> {
        self.resolver
            .current()
            .and_then(|key| key.cert.first().map(|c| c.as_ref().to_vec()))
    }
}

/// Number of PEM certificates in a bundle.
pub fn cert_count(pem: &[u8]) -> usize {
    String::from_utf8_lossy(pem)
        .matches("BEGIN CERTIFICATE")
        .count()
}
