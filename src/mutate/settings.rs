//! Typed, validated configuration that the mutation core reads. Built once at startup by `config`.
//! The values injected as env vars are `Arc`s, shared by every plan instead of copied per review.

use std::sync::Arc;

/// Default token audience for workload identity (upstream `DefaultAudience`).
pub const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Default token audience for identity binding.
pub const DEFAULT_IDENTITY_BINDING_AUDIENCE: &str = "api://AKSIdentityBinding";

/// Everything the mutation core needs from the webhook's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Audience of the projected token for workload-identity pods (`--audience`).
    pub audience: Arc<str>,
    /// Cluster tenant (`AZURE_TENANT_ID`); used when the service account names none.
    pub tenant_id: Arc<str>,
    /// `AZURE_AUTHORITY_HOST` value for the configured cloud (`AZURE_ENVIRONMENT`), trailing `/` kept.
    pub authority_host: Arc<str>,
    /// `None` when both custom-token-endpoint flags are empty: the switch is then ignored.
    pub identity_binding: Option<IdentityBinding>,
    /// Images and arguments of the optional proxy sidecar.
    pub proxy: ProxySettings,
}

/// Identity-binding ("custom token endpoint") configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentityBinding {
    /// Full switch key, `azure.workload.identity/use-<suffix>`, read from pod annotations and labels.
    pub switch_key: String,
    /// Audience of the projected token for identity-binding pods.
    pub audience: Arc<str>,
    /// `AZURE_KUBERNETES_TOKEN_PROXY` (or its fallback `AZURE_KUBERNETES_TOKEN_ENDPOINT`); empty means
    /// not configured, and pods that opt in are denied (W03).
    pub token_proxy: Arc<str>,
    /// `AZURE_KUBERNETES_SNI_NAME`; empty means not injected.
    pub sni_name: Arc<str>,
    /// Where the pod gets the cluster CA from.
    pub ca: ClusterCa,
}

/// Source of the cluster CA for identity-binding pods. At most one may be configured.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterCa {
    None,
    /// PEM injected verbatim as `AZURE_KUBERNETES_CA_DATA`.
    Data(Arc<str>),
    /// ConfigMap (in the pod's namespace) whose `ca.crt` key is projected.
    ConfigMap(String),
    /// ClusterTrustBundle projection by signer; `label_selector` is a JSON `LabelSelector`, `{}` when
    /// none is configured so that it matches every bundle of the signer (W05).
    ClusterTrustBundle {
        signer_name: String,
        label_selector: serde_json::Value,
    },
}

/// Proxy sidecar settings (`PROXY_IMAGE`, `PROXY_INIT_IMAGE`, `PROXY_[INIT_]{CPU,MEMORY}_{REQUEST,LIMIT}`,
/// `--log-level`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProxySettings {
    pub image: String,
    pub init_image: String,
    pub log_level: String,
    /// Requests and limits of the `azwi-proxy` container.
    pub resources: ContainerResources,
    /// Requests and limits of the `azwi-proxy-init` container.
    pub init_resources: ContainerResources,
}

/// Requests and limits of an injected container, as validated quantity strings. Serialised as the
/// container's `resources`, with only the quantities that are set: none set means no `resources`
/// field at all, which is what upstream injects.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ContainerResources {
    #[serde(skip_serializing_if = "ResourceList::is_empty")]
    pub requests: ResourceList,
    #[serde(skip_serializing_if = "ResourceList::is_empty")]
    pub limits: ResourceList,
}

impl ContainerResources {
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.limits.is_empty()
    }
}

/// CPU and memory quantities of a `requests` or `limits` map; `None` is left out.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ResourceList {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

impl ResourceList {
    pub fn is_empty(&self) -> bool {
        self.cpu.is_none() && self.memory.is_none()
    }
}

/// What to do when the identity-binding RBAC check says a pod's service account is not authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RbacCheck {
    /// Reject the pod (403).
    Deny,
    /// Admit the pod with an admission warning.
    Warn,
    /// Do not check at all.
    Off,
}
