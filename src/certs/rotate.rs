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
//!
//! A pass runs at start, whenever the configuration or the Secret changes (see [`super::watch`]), and every
//! `check_interval` as a backstop. A pass writes only what differs, so replicas that agree stop after one
//! write; a change right after a pass that wrote waits a growing delay first, so a writer that keeps
//! undoing our repair (or another replica disagreeing) is not fought in a tight loop.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PartialObjectMeta;
use kube::{Api, Client};
use rustls::crypto::CryptoProvider;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::plan::{loaded_cert, plan, CertData, Policy};
use super::secret::{self, Write};
use super::webhook_config;
use super::{watch, CertsError};
use crate::config::SERVICE_NAME;
use crate::k8s::cache::backoff::Backoff;
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
    /// Pause after a pass that converged. Changes are seen at once through watches; this bounds how long
    /// drift lasts when they fail.
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

impl PassReport {
    /// Whether this pass wrote the Secret or the webhook configuration.
    pub fn wrote(&self) -> bool {
        !self.secret_written.is_empty() || self.bundle_patched
    }
}

/// One replica's rotator. Cheap to build; [`Rotator::spawn`] runs it forever.
pub struct Rotator {
    client: Client,
    /// For the watches: no read timeout, a quiet watch is normal (see `k8s::client::ClientOptions`).
    watch_client: Client,
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
        watch_client: Client,
        config: RotationConfig,
        resolver: Arc<CertResolver>,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        Self {
            secrets: Api::namespaced(client.clone(), &config.namespace),
            client,
            watch_client,
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

    /// Reconciles forever (abort the handle to stop): the first pass starts immediately, later ones when
    /// the webhook configuration or the Secret changes, or after `check_interval`.
    pub async fn run(self) {
        let changed = Arc::new(Notify::new());
        let webhook_configs: Api<PartialObjectMeta<MutatingWebhookConfiguration>> =
            Api::all(self.watch_client.clone());
        let secrets: Api<PartialObjectMeta<Secret>> =
            Api::namespaced(self.watch_client.clone(), &self.config.namespace);
        let webhook_config_name = self.config.webhook_config_name.clone();
        let secret_name = self.config.secret_name.clone();
        tokio::join!(
            watch::notify_changes(webhook_configs, webhook_config_name, changed.clone()),
            watch::notify_changes(secrets, secret_name, changed.clone()),
            self.reconcile_loop(changed),
        );
    }

    async fn reconcile_loop(mut self, changed: Arc<Notify>) {
        let mut last_error: Option<String> = None;
        let mut after_write = Backoff::default();
        loop {
            let (pause, wrote) = match self.reconcile().await {
                Ok(report) => {
                    if last_error.take().is_some() {
                        tracing::info!("certificate rotation recovered");
                    }
                    (self.config.check_interval, report.wrote())
                }
                Err(e) => {
                    let text = e.to_string();
                    // The same failure every few seconds is logged once, until it changes.
                    if last_error.as_deref() != Some(text.as_str()) {
                        tracing::warn!(error = %text, serving = self.resolver.is_loaded(),
                            "certificate rotation pass failed; retrying");
                        last_error = Some(text);
                    }
                    (self.config.retry_interval, false)
                }
            };
            // After a write the next change is usually our own write coming back (the next pass finds
            // nothing to do and resets this); if it is someone undoing it, each round waits longer.
            let settle = if wrote {
                after_write.next_delay()
            } else {
                after_write.reset();
                Duration::ZERO
            };
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = changed.notified() => tokio::time::sleep(settle.min(pause)).await,
            }
        }
    }

    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }
}

/// Starts self-managed certificates for `serve`: the returned task keeps the Secret, the resolver and the
/// webhook configuration in step; `on_loaded` runs for each serving certificate once its CA is published.
/// `client` makes the reads and writes, `watch_client` (no read timeout) the watches.
pub fn start_rotation(
    client: Client,
    watch_client: Client,
    config: RotationConfig,
    resolver: Arc<CertResolver>,
    provider: Arc<CryptoProvider>,
    on_loaded: OnCertLoaded,
) -> JoinHandle<()> {
    tracing::info!(namespace = %config.namespace, secret = %config.secret_name,
        webhook_config = %config.webhook_config_name, "self-managed certificates enabled");
    Rotator::new(client, watch_client, config, resolver, provider)
        .on_loaded(on_loaded)
        .spawn()
}
