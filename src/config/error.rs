//! The one error type of configuration loading.
//!
//! Every message is a single line that names the flag or environment variable at fault and says what is
//! accepted, because it is the only thing an operator sees in `kubectl logs` of a crash-looping pod.

use crate::cloud::UnknownCloud;

/// Exit status for a configuration error. clap exits with the same status for its own usage errors, so
/// "the process exited 2" always means "fix the command line or the environment".
pub const EXIT_CODE: i32 = 2;

/// A configuration value that cannot be used. Built once at startup; never a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "AZURE_TENANT_ID is unset or empty; set it to the Microsoft Entra tenant ID of the cluster"
    )]
    TenantIdMissing,

    #[error(
        "AZURE_TENANT_ID {value:?} is not a GUID; set it to the Microsoft Entra tenant ID of the cluster, \
         8-4-4-4-12 hexadecimal digits (az account show --query tenantId -o tsv)"
    )]
    TenantIdNotGuid { value: String },

    #[error(
        "AZURE_TENANT_ID is the all-zero placeholder 00000000-0000-0000-0000-000000000000; set it to the \
         Microsoft Entra tenant ID of the cluster (az account show --query tenantId -o tsv)"
    )]
    TenantIdPlaceholder,

    #[error(transparent)]
    Cloud(#[from] UnknownCloud),

    #[error("AZURE_KUBERNETES_CA_DATA must hold one or more PEM certificates and nothing else: {reason}")]
    CaData { reason: String },

    #[error(
        "only one of AZURE_KUBERNETES_CA_DATA, AZURE_KUBERNETES_CA_CONFIGMAP_NAME or \
         AZURE_KUBERNETES_CA_CTB_SIGNER_NAME may be set, but {set} are set"
    )]
    CaSourcesConflict { set: String },

    #[error(
        "AZURE_KUBERNETES_CA_CONFIGMAP_NAME {value:?} is not a valid ConfigMap name: {reason}"
    )]
    CaConfigMapName { value: String, reason: String },

    #[error(
        "AZURE_KUBERNETES_CA_CTB_SIGNER_NAME {value:?} is not a valid signer name: {reason} \
         (expected <domain>/<path>, e.g. example.com/my-signer)"
    )]
    CaSignerName { value: String, reason: String },

    #[error(
        "AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR is set but AZURE_KUBERNETES_CA_CTB_SIGNER_NAME is not; \
         a label selector only applies to a ClusterTrustBundle signer"
    )]
    SelectorWithoutSigner,

    #[error("AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR is not a valid JSON LabelSelector: {reason}")]
    LabelSelector { reason: String },

    #[error(
        "POD_NAMESPACE {value:?} is not a valid namespace name: {reason} (leave it unset for \
         azure-workload-identity-system)"
    )]
    PodNamespace { value: String, reason: String },

    #[error(
        "{empty} is empty but {set} is set; set both to turn identity binding on, or set both to \"\" \
         to turn it off"
    )]
    IdentityBindingHalfConfigured {
        empty: &'static str,
        set: &'static str,
    },

    #[error(
        "--custom-token-endpoint-annotation-suffix gives the key {key:?}, which is not a valid Kubernetes \
         qualified name: {reason}"
    )]
    SwitchKey { key: String, reason: String },

    #[error(
        "--custom-token-endpoint-audience {audience:?} must differ (case-insensitively) from {other}; \
         identity-binding tokens need their own audience"
    )]
    AudienceClash { audience: String, other: String },

    #[error("--tls-min-version {value} is refused: TLS 1.0 and 1.1 are obsolete and insecure; use 1.2 or 1.3")]
    TlsVersionInsecure { value: String },

    #[error("--tls-min-version {value:?} is not supported; accepted: 1.2, 1.3")]
    TlsVersion { value: String },

    #[error("--metrics-backend {value:?} is not supported; accepted: prometheus")]
    MetricsBackend { value: String },

    #[error("--log-level {value:?} is not supported; accepted: info, debug, trace, all (or leave it unset)")]
    LogLevel { value: String },

    #[error("--rbac-check {value:?} is not supported; accepted: deny, warn, off")]
    RbacCheck { value: String },

    #[error(
        "{flag} {value:?} is not a listen address: {reason}; use :PORT, HOST:PORT or [IPV6]:PORT"
    )]
    ListenAddress {
        flag: &'static str,
        value: String,
        reason: String,
    },

    #[error("{flag} {value:?} is not a duration: {reason}; use e.g. 5s, 500ms, 1m or 1m30s")]
    Duration {
        flag: &'static str,
        value: String,
        reason: String,
    },

    #[error(
        "--termination-grace-period {grace:?} is too short for --shutdown-delay {delay:?} plus \
         --shutdown-drain-timeout {drain:?} plus {margin_secs}s to exit: the kubelet would kill the \
         webhook while it drains; raise the pod's terminationGracePeriodSeconds and this flag to at \
         least {needed_secs}s, or shorten the delay or the drain"
    )]
    ShutdownExceedsGracePeriod {
        grace: String,
        delay: String,
        drain: String,
        margin_secs: u64,
        needed_secs: u64,
    },

    #[error(
        "{var} {value:?} is not a Kubernetes resource quantity: {reason} (e.g. 100m, 0.5, 64Mi, 1Gi; \
         leave it unset for no {kind})"
    )]
    ResourceQuantity {
        var: &'static str,
        value: String,
        reason: String,
        kind: &'static str,
    },

    #[error(
        "{request_var} {request:?} is above {limit_var} {limit:?}; the API server refuses a container \
         whose request exceeds its limit"
    )]
    RequestAboveLimit {
        request_var: &'static str,
        request: String,
        limit_var: &'static str,
        limit: String,
    },

    #[error("--dns-name {value:?} is not a valid DNS name: {reason}")]
    DnsName { value: String, reason: String },

    #[error(
        "--dns-name {value:?} is an IP address; give it with --ip {value} (a certificate names IP \
         addresses in their own field, which clients check)"
    )]
    DnsNameIsIp { value: String },
}

impl ConfigError {
    /// Process exit status for this error (always [`EXIT_CODE`]); a method so that `main` need not know.
    pub fn exit_code(&self) -> i32 {
        EXIT_CODE
    }
}
