//! Keeping `clientConfig.caBundle` of every entry of the MutatingWebhookConfiguration equal to the CA
//! bundle.
//!
//! The write is a JSON patch touching only the `caBundle` fields (an update of the whole typed object
//! would drop fields newer than our k8s-openapi), and it carries the `resourceVersion` that was read: the
//! API server then applies it only if nothing changed in between (409 otherwise), so a replica holding a
//! stale bundle can never overwrite a newer one it has not seen.

use base64::Engine;
use hyper::header::CONTENT_TYPE;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::{Api, Client};
use serde_json::{json, Value};

use super::secret::{conflict_to_write, Write};

/// What the rotator needs to know about the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WebhookConfig {
    pub resource_version: String,
    /// Each entry's current `caBundle` (decoded bytes; empty when unset).
    pub bundles: Vec<Vec<u8>>,
}

impl WebhookConfig {
    /// Whether every entry already trusts exactly `bundle`.
    pub fn in_sync(&self, bundle: &[u8]) -> bool {
        self.bundles.iter().all(|b| b.as_slice() == bundle)
    }
}

/// Reads the configuration; `None` when it does not exist (yet).
pub(crate) async fn read(
    client: &Client,
    name: &str,
) -> Result<Option<WebhookConfig>, kube::Error> {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    Ok(api.get_opt(name).await?.map(|config| WebhookConfig {
        resource_version: config.metadata.resource_version.unwrap_or_default(),
        bundles: config
            .webhooks
            .unwrap_or_default()
            .into_iter()
            .map(|w| w.client_config.ca_bundle.map(|b| b.0).unwrap_or_default())
            .collect(),
    }))
}

/// Sets every entry's `caBundle` to `bundle`, conditional on `seen.resource_version`.
pub(crate) async fn patch(
    client: &Client,
    name: &str,
    seen: &WebhookConfig,
    bundle: &[u8],
) -> Result<Write, kube::Error> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(bundle);
    let mut ops = vec![json!({
        "op": "replace", "path": "/metadata/resourceVersion", "value": seen.resource_version,
    })];
    ops.extend((0..seen.bundles.len()).map(|i| {
        // `add` also replaces an existing member, so it works whether or not caBundle is set.
        json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": encoded})
    }));
    let body = serde_json::to_vec(&ops).map_err(kube::Error::SerdeError)?;
    let request = hyper::Request::builder()
        .method(hyper::Method::PATCH)
        .uri(format!(
            "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}"
        ))
        .header(CONTENT_TYPE, "application/json-patch+json")
        .body(body)
        .map_err(kube::Error::HttpError)?;
    conflict_to_write(client.request::<Value>(request).await)
}
