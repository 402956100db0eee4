//! Where environment variables come from.
//!
//! Configuration reads the environment only through [`EnvSource`], so tests hand in a map or a closure
//! instead of mutating the process environment (which is shared by every test thread).
//! Only the documented names are read: there is no `CONFIG_`-prefixed override (upstream W23).

use std::collections::{BTreeMap, HashMap};

pub const AZURE_TENANT_ID: &str = "AZURE_TENANT_ID";
pub const AZURE_ENVIRONMENT: &str = "AZURE_ENVIRONMENT";
pub const PROXY_IMAGE: &str = "PROXY_IMAGE";
pub const PROXY_INIT_IMAGE: &str = "PROXY_INIT_IMAGE";
pub const PROXY_CPU_REQUEST: &str = "PROXY_CPU_REQUEST";
pub const PROXY_MEMORY_REQUEST: &str = "PROXY_MEMORY_REQUEST";
pub const PROXY_CPU_LIMIT: &str = "PROXY_CPU_LIMIT";
pub const PROXY_MEMORY_LIMIT: &str = "PROXY_MEMORY_LIMIT";
pub const PROXY_INIT_CPU_REQUEST: &str = "PROXY_INIT_CPU_REQUEST";
pub const PROXY_INIT_MEMORY_REQUEST: &str = "PROXY_INIT_MEMORY_REQUEST";
pub const PROXY_INIT_CPU_LIMIT: &str = "PROXY_INIT_CPU_LIMIT";
pub const PROXY_INIT_MEMORY_LIMIT: &str = "PROXY_INIT_MEMORY_LIMIT";
pub const AZURE_KUBERNETES_TOKEN_PROXY: &str = "AZURE_KUBERNETES_TOKEN_PROXY";
/// Older name of [`AZURE_KUBERNETES_TOKEN_PROXY`] (upstream feature branch); read only when that is empty.
pub const AZURE_KUBERNETES_TOKEN_ENDPOINT: &str = "AZURE_KUBERNETES_TOKEN_ENDPOINT";
pub const AZURE_KUBERNETES_SNI_NAME: &str = "AZURE_KUBERNETES_SNI_NAME";
pub const AZURE_KUBERNETES_CA_DATA: &str = "AZURE_KUBERNETES_CA_DATA";
pub const AZURE_KUBERNETES_CA_CONFIGMAP_NAME: &str = "AZURE_KUBERNETES_CA_CONFIGMAP_NAME";
pub const AZURE_KUBERNETES_CA_CTB_SIGNER_NAME: &str = "AZURE_KUBERNETES_CA_CTB_SIGNER_NAME";
pub const AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR: &str = "AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR";
pub const POD_NAMESPACE: &str = "POD_NAMESPACE";
/// Read by the Kubernetes client (kube-rs), not through [`EnvSource`]; listed for `--help`.
pub const KUBECONFIG: &str = "KUBECONFIG";
/// Read by `logging::init`, not through [`EnvSource`]; listed for `--help`.
pub const RUST_LOG: &str = "RUST_LOG";

/// The subcommands that read environment variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Serve,
    Inject,
    Certs,
}

/// One environment variable: who reads it and the line `--help` shows for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvVar {
    pub name: &'static str,
    pub readers: &'static [Reader],
    pub help: &'static str,
}

const MUTATION: &[Reader] = &[Reader::Serve, Reader::Inject];

/// Every environment variable the program reads, in the order `--help` lists them: the single source of
/// the names in help texts and the check that help and code agree (`tests/config_help.rs`).
pub const VARIABLES: &[EnvVar] = &[
    EnvVar {
        name: AZURE_TENANT_ID,
        readers: MUTATION,
        help: "Required. Microsoft Entra tenant ID (a GUID, not all zeros), injected into pods as \
               AZURE_TENANT_ID unless the service account names its own.",
    },
    EnvVar {
        name: AZURE_ENVIRONMENT,
        readers: MUTATION,
        help: "Cloud deciding AZURE_AUTHORITY_HOST: AzurePublicCloud (default), AzureChinaCloud or \
               AzureUSGovernmentCloud.",
    },
    EnvVar {
        name: PROXY_IMAGE,
        readers: MUTATION,
        help: "Image of the azwi-proxy sidecar (default: upstream's v1.6.0 image).",
    },
    EnvVar {
        name: PROXY_INIT_IMAGE,
        readers: MUTATION,
        help: "Image of the azwi-proxy-init init container (default: upstream's v1.6.0 image).",
    },
    EnvVar {
        name: PROXY_CPU_REQUEST,
        readers: MUTATION,
        help: "CPU request of the azwi-proxy sidecar, a Kubernetes quantity (unset: none).",
    },
    EnvVar {
        name: PROXY_MEMORY_REQUEST,
        readers: MUTATION,
        help: "Memory request of the azwi-proxy sidecar (unset: none).",
    },
    EnvVar {
        name: PROXY_CPU_LIMIT,
        readers: MUTATION,
        help: "CPU limit of the azwi-proxy sidecar (unset: none).",
    },
    EnvVar {
        name: PROXY_MEMORY_LIMIT,
        readers: MUTATION,
        help: "Memory limit of the azwi-proxy sidecar (unset: none).",
    },
    EnvVar {
        name: PROXY_INIT_CPU_REQUEST,
        readers: MUTATION,
        help: "CPU request of the azwi-proxy-init container (unset: none).",
    },
    EnvVar {
        name: PROXY_INIT_MEMORY_REQUEST,
        readers: MUTATION,
        help: "Memory request of the azwi-proxy-init container (unset: none).",
    },
    EnvVar {
        name: PROXY_INIT_CPU_LIMIT,
        readers: MUTATION,
        help: "CPU limit of the azwi-proxy-init container (unset: none).",
    },
    EnvVar {
        name: PROXY_INIT_MEMORY_LIMIT,
        readers: MUTATION,
        help: "Memory limit of the azwi-proxy-init container (unset: none).",
    },
    EnvVar {
        name: AZURE_KUBERNETES_TOKEN_PROXY,
        readers: MUTATION,
        help: "Identity binding: token proxy URL injected into identity-binding pods; without it they \
               are refused.",
    },
    EnvVar {
        name: AZURE_KUBERNETES_TOKEN_ENDPOINT,
        readers: MUTATION,
        help: "Older name of AZURE_KUBERNETES_TOKEN_PROXY, read only when that is empty.",
    },
    EnvVar {
        name: AZURE_KUBERNETES_SNI_NAME,
        readers: MUTATION,
        help: "Identity binding: TLS server name of the token proxy.",
    },
    EnvVar {
        name: AZURE_KUBERNETES_CA_DATA,
        readers: MUTATION,
        help: "Identity binding: PEM CA of the token proxy, injected as is (at most one CA source).",
    },
    EnvVar {
        name: AZURE_KUBERNETES_CA_CONFIGMAP_NAME,
        readers: MUTATION,
        help: "Identity binding: ConfigMap (key ca.crt) in the pod's namespace projected as the CA file.",
    },
    EnvVar {
        name: AZURE_KUBERNETES_CA_CTB_SIGNER_NAME,
        readers: MUTATION,
        help: "Identity binding: ClusterTrustBundle signer projected as the CA file.",
    },
    EnvVar {
        name: AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR,
        readers: MUTATION,
        help: "JSON LabelSelector narrowing the signer's bundles (needs the signer name).",
    },
    EnvVar {
        name: POD_NAMESPACE,
        readers: &[Reader::Serve, Reader::Certs],
        help: "Namespace of the webhook: its certificate Secret and service DNS name \
               (default: azure-workload-identity-system).",
    },
    EnvVar {
        name: KUBECONFIG,
        readers: &[Reader::Serve, Reader::Inject],
        help: "Kubernetes client configuration of serve (unless --kubeconfig is given) and of inject \
               --from-cluster; unset: ~/.kube/config, else the pod's service account.",
    },
    EnvVar {
        name: RUST_LOG,
        readers: &[Reader::Serve],
        help: "Log filter replacing --log-level, e.g. warn,azwi_webhook::k8s=debug.",
    },
];

/// The variables `reader` reads, in [`VARIABLES`] order.
pub fn read_by(reader: Reader) -> impl Iterator<Item = &'static EnvVar> {
    VARIABLES
        .iter()
        .filter(move |v| v.readers.contains(&reader))
}

/// Namespace used when `POD_NAMESPACE` is unset or empty (the shipped manifests' namespace).
pub const DEFAULT_POD_NAMESPACE: &str = "azure-workload-identity-system";

/// A read-only view of environment variables.
pub trait EnvSource {
    /// The value of `name`, or `None` when it is unset.
    fn var(&self, name: &str) -> Option<String>;

    /// The value of `name`, treating an empty value like an unset one (Kubernetes ConfigMaps often carry
    /// keys with empty values, and upstream treats those as "not configured").
    fn non_empty(&self, name: &str) -> Option<String> {
        self.var(name).filter(|v| !v.is_empty())
    }
}

/// The real process environment. A value that is not valid UTF-8 is converted lossily; every variable we
/// read is validated afterwards, so the replacement characters surface as a validation error.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    }
}

impl<F> EnvSource for F
where
    F: Fn(&str) -> Option<String>,
{
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

impl<V: AsRef<str>> EnvSource for HashMap<String, V> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.as_ref().to_owned())
    }
}

impl<V: AsRef<str>> EnvSource for BTreeMap<&str, V> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(|v| v.as_ref().to_owned())
    }
}

/// The namespace the webhook runs in: `POD_NAMESPACE`, or [`DEFAULT_POD_NAMESPACE`] when unset or empty.
/// Not validated here; see `load_serve` and `CertsArgs::dns_names`.
pub fn pod_namespace(env: &dyn EnvSource) -> String {
    env.non_empty(POD_NAMESPACE)
        .unwrap_or_else(|| DEFAULT_POD_NAMESPACE.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closure_and_maps_are_sources() {
        let closure = |name: &str| (name == "A").then(|| "1".to_owned());
        assert_eq!(closure.var("A").as_deref(), Some("1"));
        assert_eq!(closure.var("B"), None);

        let map: BTreeMap<&str, &str> = [("A", "")].into();
        assert_eq!(map.var("A").as_deref(), Some(""));
        assert_eq!(map.non_empty("A"), None);

        let map: HashMap<String, String> = [("A".to_owned(), "x".to_owned())].into();
        assert_eq!(map.non_empty("A").as_deref(), Some("x"));
    }

    #[test]
    fn pod_namespace_defaults_when_unset_or_empty() {
        let unset: BTreeMap<&str, &str> = BTreeMap::new();
        assert_eq!(pod_namespace(&unset), DEFAULT_POD_NAMESPACE);
        let empty: BTreeMap<&str, &str> = [(POD_NAMESPACE, "")].into();
        assert_eq!(pod_namespace(&empty), DEFAULT_POD_NAMESPACE);
        let set: BTreeMap<&str, &str> = [(POD_NAMESPACE, "wi")].into();
        assert_eq!(pod_namespace(&set), "wi");
    }
}
