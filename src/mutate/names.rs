//! Pod-facing names: labels, annotations, env vars and paths, as the upstream webhook spells them.

/// Every label and annotation of this webhook starts with it.
pub const ANNOTATION_PREFIX: &str = "azure.workload.identity/";
/// Prefix of the identity-binding switch key; the suffix comes from
/// `--custom-token-endpoint-annotation-suffix`.
pub const IDENTITY_BINDING_KEY_PREFIX: &str = "azure.workload.identity/use-";

pub const USE_LABEL: &str = "azure.workload.identity/use";
pub const CLIENT_ID_ANNOTATION: &str = "azure.workload.identity/client-id";
pub const TENANT_ID_ANNOTATION: &str = "azure.workload.identity/tenant-id";
pub const TOKEN_EXPIRATION_ANNOTATION: &str =
    "azure.workload.identity/service-account-token-expiration";
pub const SKIP_CONTAINERS_ANNOTATION: &str = "azure.workload.identity/skip-containers";
/// The identity-binding switch under its default suffix, recognised even when the feature is off so
/// that the pod's owner can be told why it had no effect.
pub const DEFAULT_IDENTITY_BINDING_KEY: &str = "azure.workload.identity/use-identity-binding";
/// Records the client and tenant IDs this webhook injected, so a reinvocation can tell its own env
/// values from the user's and refresh them when the service account changed (W32).
pub const INJECTED_IDENTITY_ANNOTATION: &str = "azure.workload.identity/injected-identity";
pub const INJECT_PROXY_ANNOTATION: &str = "azure.workload.identity/inject-proxy-sidecar";
pub const PROXY_PORT_ANNOTATION: &str = "azure.workload.identity/proxy-sidecar-port";

pub const PROXY_CONTAINER: &str = "azwi-proxy";
pub const PROXY_INIT_CONTAINER: &str = "azwi-proxy-init";
pub const ENV_PROXY_PORT: &str = "PROXY_PORT";
pub const DEFAULT_PROXY_PORT: u16 = 8000;
/// Passed to the proxy when the webhook's own `--log-level` is unset, instead of an empty value (W21).
pub const DEFAULT_PROXY_LOG_LEVEL: &str = "info";

pub const VOLUME_NAME_PREFIX: &str = "azure-workload-identity-reserved-";
pub const MOUNT_PATH: &str = "/var/run/secrets/azure/wi";
pub const TOKEN_PATH: &str = "token/azure-identity-token";
pub const TOKEN_FILE: &str = "/var/run/secrets/azure/wi/token/azure-identity-token";
pub const CA_PATH: &str = "ca-cert/ca.crt";
pub const CA_FILE: &str = "/var/run/secrets/azure/wi/ca-cert/ca.crt";
pub const CA_CONFIGMAP_KEY: &str = "ca.crt";

pub const ENV_CLIENT_ID: &str = "AZURE_CLIENT_ID";
pub const ENV_TENANT_ID: &str = "AZURE_TENANT_ID";
pub const ENV_TOKEN_FILE: &str = "AZURE_FEDERATED_TOKEN_FILE";
pub const ENV_AUTHORITY_HOST: &str = "AZURE_AUTHORITY_HOST";
pub const ENV_TOKEN_PROXY: &str = "AZURE_KUBERNETES_TOKEN_PROXY";
pub const ENV_SNI_NAME: &str = "AZURE_KUBERNETES_SNI_NAME";
pub const ENV_CA_FILE: &str = "AZURE_KUBERNETES_CA_FILE";
pub const ENV_CA_DATA: &str = "AZURE_KUBERNETES_CA_DATA";

pub const DEFAULT_TOKEN_EXPIRATION_SECONDS: i64 = 3600;
pub const MIN_TOKEN_EXPIRATION_SECONDS: i64 = 3600;
pub const MAX_TOKEN_EXPIRATION_SECONDS: i64 = 86400;
