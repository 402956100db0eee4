//! Turns `serve` flags and the environment into [`ServeConfig`] (listeners, TLS, shutdown, RBAC mode) plus
//! the mutation [`Settings`], and the `certs` flags into DNS names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::cli::{CertsArgs, ServeArgs};
use super::env::{pod_namespace, EnvSource};
use super::error::ConfigError;
use super::mutation::build_settings;
use super::names::{dns_label, dns_subdomain};
use super::shutdown::ShutdownTiming;
use super::values::{self, LogLevel, TlsMinVersion};
use crate::mutate::settings::RbacCheck;
use crate::mutate::settings::Settings;

/// Name of the webhook's Service in the shipped manifests; the serving certificate is issued for it.
pub const SERVICE_NAME: &str = "azure-wi-webhook-webhook-service";

/// Everything `serve` needs besides the mutation [`Settings`].
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// TLS admission listener; `[::]` when given as `:PORT` (see `values::ipv4_fallback`).
    pub webhook_addr: SocketAddr,
    pub webhook_cert_dir: PathBuf,
    pub disable_cert_rotation: bool,
    pub tls_min_version: TlsMinVersion,
    /// When set, clients (the API server) must present a certificate signed by this CA.
    pub client_ca_file: Option<PathBuf>,
    pub health_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub log_level: LogLevel,
    pub shutdown_delay: Duration,
    /// After the delay, in-flight requests get at most this long before connections are cut.
    pub shutdown_drain_timeout: Duration,
    pub rbac_check: RbacCheck,
    /// Reviews served concurrently before new ones are shed with 429.
    pub max_in_flight_reviews: usize,
    /// `POD_NAMESPACE`: where the certificate Secret lives, and part of the service DNS name.
    pub pod_namespace: String,
    /// `--kubeconfig`: read the client configuration from this file instead of inferring it.
    pub kubeconfig: Option<PathBuf>,
    /// Upstream flags given on the command line that this webhook accepts but ignores; `serve` logs
    /// a warning naming each.
    pub ignored_flags: Vec<&'static str>,
}

/// Validates everything `serve` reads. The first problem found is returned; print it and exit with
/// [`super::EXIT_CODE`].
pub fn load_serve(
    args: &ServeArgs,
    env: &dyn EnvSource,
) -> Result<(ServeConfig, Settings), ConfigError> {
    let settings = build_settings(&args.mutation, env)?;
    let pod_namespace = checked_pod_namespace(env)?;
    let shutdown = ShutdownTiming::from_args(args)?;
    values::metrics_backend(&args.metrics_backend)?;
    let config = ServeConfig {
        webhook_addr: values::listen_addr("--webhook-addr", &args.webhook_addr)?,
        webhook_cert_dir: args.webhook_cert_dir.clone(),
        disable_cert_rotation: args.disable_cert_rotation,
        tls_min_version: values::tls_min_version(&args.tls_min_version)?,
        client_ca_file: args.client_ca_file.clone(),
        health_addr: values::listen_addr("--health-addr", &args.health_addr)?,
        metrics_addr: values::listen_addr("--metrics-addr", &args.metrics_addr)?,
        log_level: values::log_level(&args.mutation.log_level)?,
        shutdown_delay: shutdown.delay,
        shutdown_drain_timeout: shutdown.drain,
        rbac_check: values::rbac_check(&args.rbac_check)?,
        max_in_flight_reviews: args.max_in_flight_reviews as usize,
        pod_namespace,
        kubeconfig: args.kubeconfig.clone(),
        ignored_flags: args
            .arc_cluster
            .map(|_| "--arc-cluster")
            .into_iter()
            .collect(),
    };
    Ok((config, settings))
}

fn checked_pod_namespace(env: &dyn EnvSource) -> Result<String, ConfigError> {
    let namespace = pod_namespace(env);
    dns_label(&namespace).map_err(|reason| ConfigError::PodNamespace {
        value: namespace.clone(),
        reason,
    })?;
    Ok(namespace)
}

impl CertsArgs {
    /// The `--dns-name` values, or the in-cluster service name for `POD_NAMESPACE` when none is given.
    pub fn dns_names(&self, env: &dyn EnvSource) -> Result<Vec<String>, ConfigError> {
        if self.dns_names.is_empty() {
            let namespace = checked_pod_namespace(env)?;
            return Ok(vec![format!("{SERVICE_NAME}.{namespace}.svc")]);
        }
        for name in &self.dns_names {
            if name.parse::<std::net::IpAddr>().is_ok() {
                return Err(ConfigError::DnsNameIsIp {
                    value: name.clone(),
                });
            }
            // A leading `*.` wildcard is a valid certificate name.
            let host = name.strip_prefix("*.").unwrap_or(name);
            dns_subdomain(host).map_err(|reason| ConfigError::DnsName {
                value: name.clone(),
                reason,
            })?;
        }
        Ok(self.dns_names.clone())
    }
}
