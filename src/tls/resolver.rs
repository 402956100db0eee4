//! The certificate resolver rustls consults on every handshake: a lock-free pointer to the current
//! key, swapped by the reloader.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::LoadedCert;

/// Holds the current serving key. Before the first successful load it resolves to `None`, which
/// makes rustls abort the handshake: clients see a TLS error, the process keeps running, and
/// readiness stays false until a certificate arrives.
#[derive(Debug, Default)]
pub struct CertResolver {
    current: ArcSwapOption<CertifiedKey>,
    /// Unix seconds of the current leaf's notAfter; `i64::MIN` while none is loaded.
    not_after: AtomicI64,
}

impl CertResolver {
    pub fn new() -> Self {
        Self {
            current: ArcSwapOption::empty(),
            not_after: AtomicI64::new(i64::MIN),
        }
    }

    /// Makes `cert` the key served to new handshakes; connections already open keep theirs.
    pub fn set(&self, cert: &LoadedCert) {
        self.current.store(Some(Arc::clone(&cert.key)));
        self.not_after.store(cert.info.not_after, Ordering::Release);
    }

    /// Whether a certificate has been loaded (for readiness).
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }

    /// The served leaf's notAfter in unix seconds, if one is loaded (for the expiry metric).
    pub fn not_after(&self) -> Option<i64> {
        match self.not_after.load(Ordering::Acquire) {
            i64::MIN => None,
            t => Some(t),
        }
    }

    /// The key currently served.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}
