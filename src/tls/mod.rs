//! Serving certificates for the webhook listener: load a PEM chain and key from a directory, check
//! that they belong together, and hot-swap them behind a resolver so rotation never drops a
//! connection or restarts the process.
//!
//! Kubernetes Secret volumes update by atomically swapping a `..data` symlink, which silently
//! breaks inotify watches on the files themselves; so [`reload`] polls file *contents* instead.

mod config;
mod load;
mod reload;
mod resolver;

use std::path::PathBuf;

pub use config::{server_config, TlsMinVersion};
pub use load::{load_dir, CertInfo, LoadedCert, CERT_FILE, KEY_FILE};
pub use reload::{CertReloader, OnCertError, OnCertLoaded};
pub use resolver::CertResolver;

/// Everything that can go wrong loading certificates or building the TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} contains no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("cannot parse PEM in {path}: {source}")]
    Pem {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("cannot parse the leaf certificate in {path}: {message}")]
    Leaf { path: PathBuf, message: String },
    #[error("private key in {key} does not fit the leaf certificate in {cert}: {source}")]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("client CA file {path} is unusable: {message}")]
    ClientCa { path: PathBuf, message: String },
    #[error("cannot build the TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// The one crypto provider this crate uses (ring builds much faster than aws-lc-rs here), passed
/// explicitly so nothing depends on a process-wide default having been installed.
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}
