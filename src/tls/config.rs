//! The rustls server configuration for the webhook listener.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::{CertResolver, TlsError};

/// Lowest TLS version accepted (`--tls-min-version`). TLS 1.0 and 1.1 are not offered at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMinVersion {
    V1_2,
    #[default]
    V1_3,
}

impl TlsMinVersion {
    fn versions(self) -> &'static [&'static SupportedProtocolVersion] {
        static BOTH: &[&SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        static ONLY_13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self {
            Self::V1_2 => BOTH,
            Self::V1_3 => ONLY_13,
        }
    }
}

/// Builds the webhook listener's TLS configuration: certificates come from `resolver` (so reloads
/// need no rebuild), ALPN offers `h2` before `http/1.1` (the API server then uses HTTP/2), and
/// with `client_ca` every client must present a certificate signed by that CA.
pub fn server_config(
    resolver: Arc<CertResolver>,
    min_version: TlsMinVersion,
    client_ca: Option<&Path>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(min_version.versions())
        .map_err(TlsError::Config)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let roots = load_client_roots(path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsError::ClientCa {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn load_client_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let bad = |message: String| TlsError::ClientCa {
        path: path.to_path_buf(),
        message,
    };
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(e.to_string()))?;
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no PEM certificate found".to_string()));
    }
    Ok(roots)
}
