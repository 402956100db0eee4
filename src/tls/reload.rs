//! Polls the certificate directory and swaps in a new key when the files' contents change.
//!
//! Polling contents (not watching inodes) is deliberate: a Kubernetes Secret volume updates by
//! renaming a `..data` symlink, which file watches on `tls.crt` never see. Reading by path each
//! time follows the symlinks afresh, and a digest comparison makes an unchanged poll cheap.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::load::{parse_pair, read_pair};
use super::{CertResolver, LoadedCert, TlsError};

/// Called after every successful swap (including the first load): the place to mark readiness
/// and publish the expiry metric.
pub type OnCertLoaded = Arc<dyn Fn(&LoadedCert) + Send + Sync>;

/// Called for every rejected new pair or unreadable directory (the same read error only once
/// until it changes): the place to count reload failures.
pub type OnCertError = Arc<dyn Fn(&TlsError) + Send + Sync>;

/// Default poll period: quick enough that a rotated certificate is served within seconds, cheap
/// enough (two small reads and a hash) to be invisible.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// Keeps a [`CertResolver`] in step with a certificate directory.
pub struct CertReloader {
    dir: PathBuf,
    resolver: Arc<CertResolver>,
    provider: Arc<CryptoProvider>,
    interval: Duration,
    on_loaded: Option<OnCertLoaded>,
    on_error: Option<OnCertError>,
    /// Digest of the last contents we tried (loaded or rejected), so a bad pair is reported once,
    /// not every poll.
    last_seen: Option<[u8; 32]>,
    /// Last read error, so a missing file is logged once rather than every second.
    last_read_error: Option<String>,
}

impl CertReloader {
    pub fn new(
        dir: impl Into<PathBuf>,
        resolver: Arc<CertResolver>,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        Self {
            dir: dir.into(),
            resolver,
            provider,
            interval: DEFAULT_INTERVAL,
            on_loaded: None,
            on_error: None,
            last_seen: None,
            last_read_error: None,
        }
    }

    /// Poll period (default 1 s).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Hook run after each successful swap.
    pub fn on_loaded(mut self, hook: OnCertLoaded) -> Self {
        self.on_loaded = Some(hook);
        self
    }

    /// Hook run when new contents are rejected or the files cannot be read.
    pub fn on_error(mut self, hook: OnCertError) -> Self {
        self.on_error = Some(hook);
        self
    }

    /// Checks the directory once. `Ok(true)`: a new certificate is now served; `Ok(false)`:
    /// nothing changed; `Err`: the files could not be used and the previous certificate (if
    /// any) stays in service. Every outcome worth knowing is also logged.
    pub fn poll_once(&mut self) -> Result<bool, TlsError> {
        let (cert_pem, key_pem) = match read_pair(&self.dir) {
            Ok(pair) => {
                self.last_read_error = None;
                pair
            }
            Err(err) => {
                let text = err.to_string();
                if self.last_read_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(error = %text, serving = self.resolver.is_loaded(),
                        "cannot read serving certificate; keeping the current one");
                    self.last_read_error = Some(text);
                    self.report(&err);
                }
                return Err(err);
            }
        };
        let digest = digest_pair(&cert_pem, &key_pem);
        if self.last_seen == Some(digest) {
            return Ok(false);
        }
        self.last_seen = Some(digest);
        match parse_pair(&self.dir, &cert_pem, &key_pem, &self.provider) {
            Ok(loaded) => {
                self.resolver.set(&loaded);
                tracing::info!(subject = %loaded.info.subject, not_after = loaded.info.not_after,
                    chain_len = loaded.info.chain_len, "serving certificate loaded");
                if let Some(hook) = &self.on_loaded {
                    hook(&loaded);
                }
                Ok(true)
            }
            Err(err) => {
                tracing::error!(error = %err, serving = self.resolver.is_loaded(),
                    "rejected new serving certificate; keeping the current one");
                self.report(&err);
                Err(err)
            }
        }
    }

    fn report(&self, err: &TlsError) {
        if let Some(hook) = &self.on_error {
            hook(err);
        }
    }

    /// Polls forever (abort the handle to stop). The first poll happens immediately.
    pub async fn run(mut self) {
        let mut ticker = tokio::time::interval(self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            // Errors are already logged and leave the old certificate in place.
            let _ = self.poll_once();
        }
    }

    /// Runs [`Self::run`] on the current tokio runtime.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }
}

/// Length-prefixed so that moving bytes between the two files still changes the digest.
fn digest_pair(cert: &[u8], key: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update((cert.len() as u64).to_le_bytes());
    hasher.update(cert);
    hasher.update(key);
    hasher.finalize().into()
}
