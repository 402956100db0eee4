//! The self-managed certificate loop, run by every replica.
//!
//! Each pass: read the MutatingWebhookConfiguration, read the Secret (create it when missing), plan the
//! next contents (see [`super::plan`]) and write them conditionally, serve the leaf at once through the
//! [`CertResolver`] (no waiting for the kubelet to sync a mounted Secret), then make every `caBundle` equal
//! to the Secret's `ca.crt`. A lost write race (409) means another replica got there first: the pass starts
//! again from fresh reads, so all replicas converge on one Secret without a Lease.
//!
//! Reading the configuration *before* the Secret matters: if another replica rotates in between, our
//! conditional patch of the configuration fails with 409 (it moved) or theirs follows ours, so a stale
//! bundle can never be left behind.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use rustls::crypto::CryptoProvider;
use tokio::task::JoinHandle;

use super::plan::{loaded_cert, plan, CertData, Policy};
use super::secret::{self, Write};
use super::webhook_config;
use super::CertsError;
use crate::config::SERVICE_NAME;
use crate::tls::{CertResolver, OnCertLoaded};

/// Secret holding the CA bundle, the signing CA key and the serving certificate (as upstream names it).
pub const SECRET_NAME: &str = "azure-wi-webhook-server-cert";
/// The webhook configuration whose `caBundle`s are kept in sync.
pub const WEBHOOK_CONFIG_NAME: &str = "azure-wi-webhook-mutating-webhook-configuration";

/// Passes that lose a write race are retried at once, this many times, before waiting.
const MAX_ATTEMPTS: usize = 5;

/// Where the certificates live and how often to look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationConfig {
    /// `POD_NAMESPACE`: where the Secret lives.
    pub namespace: String,
    pub secret_name: String,
    pub webhook_config_name: String,
    /// Names the serving certificate is issued for; the first is its common name.
    pub dns_names: Vec<String>,
    pub policy: Policy,
    /// Pause after a pass that converged: also the bound on how long `caBundle` drift lasts.
    pub check_interval: Duration,
    /// Pause after a failed pass (API server unreachable, configuration missing).
    pub retry_interval: Duration,
}

impl RotationConfig {
    /// The shipped names for a webhook running in `namespace`.
    pub fn for_namespace(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            secret_name: SECRET_NAME.to_owned(),
            webhook_config_name: WEBHOOK_CONFIG_NAME.to_owned(),
            dns_names: vec![
                format!("{SERVICE_NAME}.{namespace}.svc"),
                format!("{SERVICE_NAME}.{namespace}.svc.cluster.local"),
            ],
            policy: Policy::default(),
            check_interval: Duration::from_secs(60),
            retry_interval: Duration::from_secs(5),
        }
    }
}

/// Why a pass did not converge; the loop logs it and retries after `retry_interval`.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("Kubernetes API: {0}")]
    Kubernetes(#[from] kube::Error),
    #[error(transparent)]
    Certs(#[from] CertsError),
    #[error("MutatingWebhookConfiguration {0} not found; cannot publish the CA bundle")]
    WebhookConfigMissing(String),
    #[error("the certificate Secret holds no usable serving certificate after writing it")]
    Unusable,
    #[error("still losing write races after {MAX_ATTEMPTS} attempts")]
    Contended,
}

/// What one converged pass did, for tests and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Why the Secret was written (empty: it was already right, or another replica wrote it).
    pub secret_written: Vec<&'static str>,
    /// The webhook configuration's `caBundle`s had to be (re)written.
    pub bundle_patched: bool,
    /// Write races lost (and retried) during the pass.
    pub conflicts: usize,
}

/// One replica's rotator. Cheap to build; [`Rotator::spawn`] runs it forever.
pub struct Rotator {
    client: Client,
    secrets: Api<Secret>,
    config: RotationConfig,
    resolver: Arc<CertResolver>,
    provider: Arc<CryptoProvider>,
    on_loaded: Option<OnCertLoaded>,
    /// `tls.crt` currently in the resolver.
    served: Option<String>,
    /// `tls.crt` last reported through `on_loaded` (only once its CA is published).
    reported: Option<String>,
}

impl Rotator {
    pub fn new(
        client: Client,
        config: RotationConfig,
        resolver: Arc<CertResolver>,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        Self {
            secrets: Api::namespaced(client.clone(), &config.namespace),
            client,
            config,
            resolver,
            provider,
            on_loaded: None,
            served: None,
            reported: None,
        }
    }

    /// Hook run once per new serving certificate, when it is served *and* its CA is in every `caBundle`:
    /// the place to mark readiness and publish the expiry metric.
    pub fn on_loaded(mut self, hook: OnCertLoaded) -> Self {
        self.on_loaded = Some(hook);
        self
    }

    /// One reconciliation pass at `now`.
    pub async fn reconcile_at(&mut self, now: SystemTime) -> Result<PassReport, RotateError> {
        let mut report = PassReport::default();
        for _ in 0..MAX_ATTEMPTS {
            let name = self.config.webhook_config_name.clone();
            let name = name.as_str();
            let webhook = webhook_config::read(&self.client, name).await?;
            let existing = self.secrets.get_opt(&self.config.secret_name).await?;
            let current = existing.as_ref().map(secret::cert_data).unwrap_or_default();
            let plan = plan(
                &current,
                &self.config.dns_names,
                &self.config.policy,
                now,
                &self.provider,
            )?;
            if plan.changed() {
                let written = match existing {
                    None => {
                        secret::create(&self.secrets, &self.config.secret_name, &plan.data).await?
                    }
                    Some(existing) => secret::update(&self.secrets, existing, &plan.data).await?,
                };
                if written == Write::Conflict {
                    report.conflicts += 1;
                    continue;
                }
                tracing::info!(secret = %self.config.secret_name, reasons = ?plan.reasons,
                    "certificate Secret written");
                report.secret_written = plan.reasons.clone();
            }
            self.serve(&plan.data)?;

            let Some(webhook) = webhook else {
                return Err(RotateError::WebhookConfigMissing(name.to_owned()));
            };
            let bundle = plan.data.ca_crt.as_bytes();
            if !webhook.in_sync(bundle) {
                match webhook_config::patch(&self.client, name, &webhook, bundle).await? {
                    Write::Conflict => {
                        report.conflicts += 1;
                        continue;
                    }
                    Write::Done => {
                        tracing::info!(config = %name, "caBundle updated");
                        report.bundle_patched = true;
                    }
                }
            }
            self.report_loaded(&plan.data);
            return Ok(report);
        }
        Err(RotateError::Contended)
    }

    /// One pass at the current time.
    pub async fn reconcile(&mut self) -> Result<PassReport, RotateError> {
        self.reconcile_at(SystemTime::now()).await
    }

    /// Puts the Secret's leaf into the resolver if it is not the one served already.
    fn serve(&mut self, data: &CertData) -> Result<(), RotateError> {
        if self.served.as_deref() == Some(data.tls_crt.as_str()) {
            return Ok(());
        }
        let loaded = loaded_cert(data, &self.provider).ok_or(RotateError::Unusable)?;
        self.resolver.set(&loaded);
        tracing::info!(subject = %loaded.info.subject, not_after = loaded.info.not_after,
            "serving certificate loaded from the Secret");
        self.served = Some(data.tls_crt.clone());
        Ok(())
    }

    fn report_loaded(&mut self, data: &CertData) {
        if self.reported.as_deref() == Some(data.tls_crt.as_str()) {
            return;
        }
        if let (Some(hook), Some(loaded)) = (&self.on_loaded, loaded_cert(data, &self.provider)) {
            hook(&loaded);
        }
        self.reported = Some(data.tls_crt.clone());
    }

    /// Reconciles forever (abort the handle to stop); the first pass starts immediately.
    pub async fn run(mut self) {
        let mut last_error: Option<String> = None;
        loop {
            let pause = match self.reconcile().await {
                Ok(_) => {
                    if last_error.take().is_some() {
                        tracing::info!("certificate rotation recovered");
                    }
                    self.config.check_interval
                }
                Err(e) => {
                    let text = e.to_string();
                    // The same failure every few seconds is logged once, until it changes.
                    if last_error.as_deref() != Some(text.as_str()) {
                        tracing::warn!(error = %text, serving = self.resolver.is_loaded(),
                            "certificate rotation pass failed; retrying");
                        last_error = Some(text);
                    }
                    self.config.retry_interval
                }
            };
            tokio::time::sleep(pause).await;
        }
    }

    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }
}

/// Starts self-managed certificates for `serve`: the returned task keeps the Secret, the resolver and the
/// webhook configuration in step; `on_loaded` runs for each serving certificate once its CA is published.
pub fn start_rotation(
    client: Client,
    config: RotationConfig,
    resolver: Arc<CertResolver>,
    provider: Arc<CryptoProvider>,
    on_loaded: OnCertLoaded,
) -> JoinHandle<()> {
    tracing::info!(namespace = %config.namespace, secret = %config.secret_name,
        webhook_config = %config.webhook_config_name, "self-managed certificates enabled");
    Rotator::new(client, config, resolver, provider)
        .on_loaded(on_loaded)
        .spawn()
}
