//! Which pods and pod templates reach the webhook: the webhook configuration applied to each one's
//! labels and its namespace's labels, as the API server applies it; with `--all`, every one.

use super::namespaces::NamespaceLabels;
use super::webhook_config::{NotSent, WebhookConfig};
use super::workloads::Workload;

pub struct Selection {
    /// `None` with `--all`: the configuration is not applied.
    pub webhook: Option<WebhookConfig>,
    pub namespaces: NamespaceLabels,
}

impl Selection {
    /// `Ok` when the webhook would be called for the workload's pods.
    pub fn check(&self, workload: &Workload) -> Result<(), NotSent> {
        match &self.webhook {
            None => Ok(()),
            Some(webhook) => webhook.sends(
                &workload.namespace,
                &self.namespaces.of(&workload.namespace),
                &workload.labels,
            ),
        }
    }
}
