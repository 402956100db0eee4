//! The files `azwi-webhook certs` writes for a manual or development install: a CA (new, or an existing
//! one reused) and a serving certificate signed by it, in one directory.
//!
//! Nothing is overwritten without `--force`: replacing `ca.crt` in use breaks admission until every
//! `caBundle` trusts the new CA. Each file is written beside its final name and renamed into place, so an
//! interrupted run never leaves a truncated certificate or key behind.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine;

use super::existing_ca::ExistingCa;
use super::generate::{
    issue_leaf, new_ca, CertsError, ServingNames, SigningCa, BACKDATE, CA_VALIDITY,
    SERVING_VALIDITY,
};

pub const CA_CRT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";

/// What to write where.
pub struct DevCerts<'a> {
    pub out: &'a Path,
    pub names: ServingNames,
    /// Sign with this CA instead of a new one; its key is then not written.
    pub ca: Option<ExistingCa>,
    /// Replace files that already exist.
    pub force: bool,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub files: Vec<PathBuf>,
    /// The CA certificate, base64 PEM: the value of a webhook's `clientConfig.caBundle`.
    pub ca_bundle: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DevCertsError {
    #[error("{} already exist{} (nothing was written); pass --force to overwrite, knowing that a new ca.crt \
             must also replace the caBundle the API server trusts", list(paths), if paths.len() == 1 { "s" } else { "" })]
    Exists { paths: Vec<PathBuf> },
    #[error(transparent)]
    Certs(#[from] CertsError),
    #[error(
        "--ca-cert {}: its subject name cannot be repeated byte for byte in the issued certificate, \
         so clients would not chain it to the CA; re-issue the CA with a plain subject (one attribute \
         per RDN, UTF8String or PrintableString values)",
        path.display()
    )]
    IssuerName { path: PathBuf },
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl DevCertsError {
    /// 2 when the command line must change (files in the way), 1 when generating or writing failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Exists { .. } => 2,
            _ => 1,
        }
    }
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One file to write, and whether it holds a private key (mode 0600 on Unix).
struct File {
    name: &'static str,
    contents: String,
    secret: bool,
}

/// Generates (with a new CA unless `request.ca`) and writes `ca.crt`, `ca.key` (new CA only), `tls.crt`
/// and `tls.key` into `request.out`, creating it if needed.
pub fn write_dev_certs(request: DevCerts<'_>, now: SystemTime) -> Result<Written, DevCertsError> {
    let names = file_names(request.ca.is_some());
    let existing: Vec<PathBuf> = names
        .iter()
        .map(|name| request.out.join(name))
        .filter(|path| path.symlink_metadata().is_ok())
        .collect();
    if !existing.is_empty() && !request.force {
        return Err(DevCertsError::Exists { paths: existing });
    }

    let leaf_until = now.checked_add(SERVING_VALIDITY).ok_or(CertsError::Clock)?;
    let files = match &request.ca {
        Some(ca) => {
            let leaf = issue_leaf(
                &ca.signer,
                &request.names,
                now,
                leaf_until.min(ca.not_after),
                BACKDATE,
            )?;
            if issuer_name(&leaf.cert_pem).as_deref() != Some(ca.subject.as_slice()) {
                return Err(DevCertsError::IssuerName {
                    path: ca.cert_path.clone(),
                });
            }
            vec![
                public(CA_CRT, ca.cert_pem.clone()),
                public(TLS_CRT, leaf.cert_pem),
                secret(TLS_KEY, leaf.key_pem),
            ]
        }
        None => {
            let ca = new_ca(now, CA_VALIDITY, BACKDATE)?;
            let signer = SigningCa::own(&ca.key_pem)?;
            let leaf = issue_leaf(&signer, &request.names, now, leaf_until, BACKDATE)?;
            vec![
                public(CA_CRT, ca.cert_pem),
                secret(CA_KEY, ca.key_pem),
                public(TLS_CRT, leaf.cert_pem),
                secret(TLS_KEY, leaf.key_pem),
            ]
        }
    };
    let ca_bundle = files
        .first()
        .map(|ca| base64::engine::general_purpose::STANDARD.encode(&ca.contents))
        .unwrap_or_default();

    fs::create_dir_all(request.out).map_err(|source| DevCertsError::Io {
        path: request.out.to_path_buf(),
        source,
    })?;
    // Every file is complete on disk before the first one is renamed into place.
    let mut staged = Vec::with_capacity(files.len());
    for file in &files {
        staged.push(stage(request.out, file)?);
    }
    let mut written = Vec::with_capacity(files.len());
    for (file, temporary) in files.iter().zip(staged) {
        let path = request.out.join(file.name);
        fs::rename(&temporary, &path).map_err(|source| DevCertsError::Io {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(Written {
        files: written,
        ca_bundle,
    })
}

/// The files written, in order; `ca.key` only when a new CA is made.
pub fn file_names(reusing_ca: bool) -> Vec<&'static str> {
    if reusing_ca {
        vec![CA_CRT, TLS_CRT, TLS_KEY]
    } else {
        vec![CA_CRT, CA_KEY, TLS_CRT, TLS_KEY]
    }
}

fn public(name: &'static str, contents: String) -> File {
    File {
        name,
        contents,
        secret: false,
    }
}

fn secret(name: &'static str, contents: String) -> File {
    File {
        name,
        contents,
        secret: true,
    }
}

/// The DER issuer name of a PEM certificate.
fn issuer_name(cert_pem: &str) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(cert.tbs_certificate.issuer.as_raw().to_vec())
}

/// Writes `file` to a temporary name in `dir` with its final mode, synced; returns that name.
fn stage(dir: &Path, file: &File) -> Result<PathBuf, DevCertsError> {
    let path = dir.join(format!(".{}.tmp", file.name));
    let io_err = |source| DevCertsError::Io {
        path: path.clone(),
        source,
    };
    // A temporary file left by an interrupted run may have any mode: start afresh.
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_err(e)),
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if file.secret { 0o600 } else { 0o644 });
    }
    let mut handle = options.open(&path).map_err(io_err)?;
    handle
        .write_all(file.contents.as_bytes())
        .and_then(|()| handle.sync_all())
        .map_err(io_err)?;
    Ok(path)
}
