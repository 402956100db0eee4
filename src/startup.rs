//! `serve`'s start: the local inputs checked before anything talks to the API server, and the one
//! line a failed start prints.
//!
//! Files named by flags are read here, first, so that a typo in a path is reported as such at once
//! instead of behind a Kubernetes client error, or, for a certificate directory, as a webhook that
//! never becomes ready.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

use crate::config::{ServeConfig, DEFAULT_WEBHOOK_CERT_DIR};
use crate::tls::{self, CertResolver, TlsError};

/// A file or directory named by a `serve` flag that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LocalInputError {
    #[error("--client-ca-file {path}")]
    ClientCa {
        path: PathBuf,
        #[source]
        source: Box<TlsError>,
    },
    #[error(
        "--webhook-cert-dir {path} (with --disable-cert-rotation, tls.crt and tls.key must be there \
         at startup)"
    )]
    CertDir {
        path: PathBuf,
        #[source]
        source: Box<TlsError>,
    },
}

/// Reads and checks every local file `serve` will use: the client CA (`--client-ca-file`) and, when
/// the certificates are provided (`--disable-cert-rotation`), the serving certificate and key. The
/// certificate reloader reads them again afterwards and keeps following changes.
pub fn check_local_inputs(
    config: &ServeConfig,
    provider: &Arc<CryptoProvider>,
) -> Result<(), LocalInputError> {
    if let Some(path) = &config.client_ca_file {
        tls::server_config(
            Arc::new(CertResolver::new()),
            config.tls_min_version,
            Some(path),
            Arc::clone(provider),
        )
        .map_err(|source| LocalInputError::ClientCa {
            path: path.clone(),
            source: Box::new(source),
        })?;
    }
    if config.disable_cert_rotation {
        tls::load_dir(&config.webhook_cert_dir, provider).map_err(|source| {
            LocalInputError::CertDir {
                path: config.webhook_cert_dir.clone(),
                source: Box::new(source),
            }
        })?;
    }
    Ok(())
}

/// The `--webhook-cert-dir` given that this start will not read: with certificate rotation on, the
/// serving certificate comes from the Secret through the API, never from files. A directory other
/// than the default then most likely means `--disable-cert-rotation` was forgotten; the default
/// itself is passed by every shipped Deployment (upstream's mounts the Secret there), so it is not
/// worth a word. Not an error: upstream-style Deployments that mount the Secret elsewhere must still
/// start.
pub fn unread_cert_dir(config: &ServeConfig) -> Option<&Path> {
    let dir = config.webhook_cert_dir.as_path();
    (!config.disable_cert_rotation && dir != Path::new(DEFAULT_WEBHOOK_CERT_DIR)).then_some(dir)
}

/// `error` and its causes on one line: the first line of each message (further lines, such as a
/// YAML parser's excerpt of the input, repeat what the first says), joined by ": ", leaving out a
/// cause whose text the line already holds (many messages embed their cause).
pub fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = first_line(&error.to_string()).to_owned();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        let line = first_line(&cause_text);
        if !line.is_empty() && !text.contains(line) {
            text.push_str(": ");
            text.push_str(line);
        }
        source = cause.source();
    }
    text
}

fn first_line(message: &str) -> &str {
    message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Layer {
        message: &'static str,
        #[source]
        source: Option<Box<Layer>>,
    }

    fn chain(messages: &[&'static str]) -> Layer {
        messages
            .iter()
            .rev()
            .fold(None, |source, message| {
                Some(Layer {
                    message,
                    source: source.map(Box::new),
                })
            })
            .expect("at least one message")
    }

    #[test]
    fn only_a_given_cert_dir_with_rotation_on_is_unread() {
        use crate::config::{load_serve, parse_go_style, Command};
        let env: std::collections::BTreeMap<&str, &str> =
            [("AZURE_TENANT_ID", "11111111-2222-3333-4444-555555555555")].into();
        let unread = |args: &[&str]| {
            let argv = ["azwi-webhook", "serve"].iter().chain(args);
            let Command::Serve(args) = parse_go_style(argv).expect("valid").into_command() else {
                panic!("not serve");
            };
            let (config, _) = load_serve(&args, &env).expect("valid configuration");
            unread_cert_dir(&config).map(Path::to_path_buf)
        };
        assert_eq!(
            unread(&[]),
            None,
            "the default, as every shipped Deployment passes it"
        );
        assert_eq!(unread(&["--webhook-cert-dir=/certs"]), None);
        assert_eq!(
            unread(&["--webhook-cert-dir=/cert"]),
            Some(PathBuf::from("/cert"))
        );
        assert_eq!(
            unread(&["--webhook-cert-dir=/cert", "--disable-cert-rotation"]),
            None,
            "read (and checked) with provided certificates"
        );
    }

    #[test]
    fn causes_join_on_one_line_without_repeats() {
        assert_eq!(
            one_line(&chain(&[
                "Kubernetes client",
                "cannot use --kubeconfig k",
                "denied"
            ])),
            "Kubernetes client: cannot use --kubeconfig k: denied"
        );
        // The parent already says what its cause says: not repeated.
        assert_eq!(
            one_line(&chain(&["cannot read f: not found", "not found"])),
            "cannot read f: not found"
        );
        assert_eq!(
            one_line(&chain(&[
                "parse error\n --> <input>:1:1\n  |\n1 | x",
                "",
                "root"
            ])),
            "parse error: root"
        );
    }
}
