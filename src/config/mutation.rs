//! Builds the mutation `Settings` from the shared flags and the environment. Used by both `serve` and
//! `inject`, so an offline injection mutates exactly as the running webhook would.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::cli::MutationArgs;
use super::env::{self, EnvSource};
use super::error::ConfigError;
use super::guid::{tenant_guid, TenantIdProblem};
use super::names::{dns_subdomain, qualified_name};
use super::resources::{self, container_resources};
use super::selector::parse_label_selector;
use super::values::log_level;
use crate::cloud::Cloud;
use crate::mutate::names::IDENTITY_BINDING_KEY_PREFIX;
use crate::mutate::settings::{
    ClusterCa, IdentityBinding, ProxySettings, Settings, DEFAULT_AUDIENCE,
};

/// Proxy sidecar image when `PROXY_IMAGE` is unset or empty (upstream derives it from its build version).
pub const DEFAULT_PROXY_IMAGE: &str = "mcr.microsoft.com/oss/azure/workload-identity/proxy:v1.6.0";
/// Proxy init image when `PROXY_INIT_IMAGE` is unset or empty.
pub const DEFAULT_PROXY_INIT_IMAGE: &str =
    "mcr.microsoft.com/oss/azure/workload-identity/proxy-init:v1.6.0";

const SUFFIX_FLAG: &str = "--custom-token-endpoint-annotation-suffix";
const AUDIENCE_FLAG: &str = "--custom-token-endpoint-audience";

/// Validates the mutation flags and environment into [`Settings`]. `AZURE_TENANT_ID` is required (for
/// `inject` too: without it, pods whose service account names no tenant would get no tenant at all).
pub fn build_settings(args: &MutationArgs, env: &dyn EnvSource) -> Result<Settings, ConfigError> {
    let tenant_id = tenant_id(env)?;
    let cloud = Cloud::from_name(&env.var(env::AZURE_ENVIRONMENT).unwrap_or_default())?;
    let audience = if args.audience.is_empty() {
        DEFAULT_AUDIENCE.to_owned()
    } else {
        args.audience.clone()
    };
    // The CA settings are checked even when identity binding is off: a broken value is a mistake either way.
    let ca = cluster_ca(env)?;
    let identity_binding =
        identity_binding(args, &audience)?.map(|(switch_key, ib_audience)| IdentityBinding {
            switch_key,
            audience: ib_audience.into(),
            token_proxy: env
                .non_empty(env::AZURE_KUBERNETES_TOKEN_PROXY)
                .or_else(|| env.non_empty(env::AZURE_KUBERNETES_TOKEN_ENDPOINT))
                .unwrap_or_default()
                .into(),
            sni_name: env
                .non_empty(env::AZURE_KUBERNETES_SNI_NAME)
                .unwrap_or_default()
                .into(),
            ca,
        });
    Ok(Settings {
        audience: audience.into(),
        tenant_id: tenant_id.into(),
        authority_host: cloud.authority_host().into(),
        identity_binding,
        proxy: ProxySettings {
            image: env
                .non_empty(env::PROXY_IMAGE)
                .unwrap_or_else(|| DEFAULT_PROXY_IMAGE.to_owned()),
            init_image: env
                .non_empty(env::PROXY_INIT_IMAGE)
                .unwrap_or_else(|| DEFAULT_PROXY_INIT_IMAGE.to_owned()),
            log_level: log_level(&args.log_level)?.as_str().to_owned(),
            resources: container_resources(env, resources::PROXY)?,
            init_resources: container_resources(env, resources::PROXY_INIT)?,
        },
        // Needs the API server version; `serve` sets it after discovery, offline `inject` stays classic.
    })
}

/// `AZURE_TENANT_ID`, which must be a GUID other than the all-zero placeholder.
fn tenant_id(env: &dyn EnvSource) -> Result<String, ConfigError> {
    let value = env
        .non_empty(env::AZURE_TENANT_ID)
        .ok_or(ConfigError::TenantIdMissing)?;
    match tenant_guid(&value) {
        Ok(()) => Ok(value),
        Err(TenantIdProblem::NotAGuid) => Err(ConfigError::TenantIdNotGuid { value }),
        Err(TenantIdProblem::AllZero) => Err(ConfigError::TenantIdPlaceholder),
    }
}

/// `(switch key, audience)` when identity binding is on; `None` when both flags are empty (upstream main).
fn identity_binding(
    args: &MutationArgs,
    audience: &str,
) -> Result<Option<(String, String)>, ConfigError> {
    let suffix = &args.custom_token_endpoint_annotation_suffix;
    let ib_audience = &args.custom_token_endpoint_audience;
    match (suffix.is_empty(), ib_audience.is_empty()) {
        (true, true) => return Ok(None),
        (true, false) => {
            return Err(ConfigError::IdentityBindingHalfConfigured {
                empty: SUFFIX_FLAG,
                set: AUDIENCE_FLAG,
            })
        }
        (false, true) => {
            return Err(ConfigError::IdentityBindingHalfConfigured {
                empty: AUDIENCE_FLAG,
                set: SUFFIX_FLAG,
            })
        }
        (false, false) => {}
    }
    let key = format!("{IDENTITY_BINDING_KEY_PREFIX}{suffix}");
    let key_error = |reason: String| ConfigError::SwitchKey {
        key: key.clone(),
        reason,
    };
    if suffix.contains('/') {
        return Err(key_error("the suffix must not contain '/'".into()));
    }
    // Upstream validates the lower-cased key; the key itself keeps its case because annotation lookups are
    // case-sensitive and existing pods use the key as configured.
    qualified_name(&key.to_lowercase()).map_err(key_error)?;
    for (other, label) in [
        (
            DEFAULT_AUDIENCE,
            format!("the default audience {DEFAULT_AUDIENCE:?}"),
        ),
        (audience, format!("--audience {audience:?}")),
    ] {
        if ib_audience.eq_ignore_ascii_case(other) {
            return Err(ConfigError::AudienceClash {
                audience: ib_audience.clone(),
                other: label,
            });
        }
    }
    Ok(Some((key, ib_audience.clone())))
}

/// The single configured cluster CA source, checked.
fn cluster_ca(env: &dyn EnvSource) -> Result<ClusterCa, ConfigError> {
    let data = env.non_empty(env::AZURE_KUBERNETES_CA_DATA);
    let config_map = env.non_empty(env::AZURE_KUBERNETES_CA_CONFIGMAP_NAME);
    let signer = env.non_empty(env::AZURE_KUBERNETES_CA_CTB_SIGNER_NAME);
    let selector = env
        .var(env::AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR)
        .filter(|s| !s.trim().is_empty());

    let set: Vec<&str> = [
        (data.is_some(), env::AZURE_KUBERNETES_CA_DATA),
        (
            config_map.is_some(),
            env::AZURE_KUBERNETES_CA_CONFIGMAP_NAME,
        ),
        (signer.is_some(), env::AZURE_KUBERNETES_CA_CTB_SIGNER_NAME),
    ]
    .into_iter()
    .filter_map(|(is_set, name)| is_set.then_some(name))
    .collect();
    if set.len() > 1 {
        return Err(ConfigError::CaSourcesConflict {
            set: set.join(" and "),
        });
    }
    if selector.is_some() && signer.is_none() {
        return Err(ConfigError::SelectorWithoutSigner);
    }

    if let Some(data) = data {
        check_ca_data(&data).map_err(|reason| ConfigError::CaData { reason })?;
        return Ok(ClusterCa::Data(data.into()));
    }
    if let Some(name) = config_map {
        dns_subdomain(&name).map_err(|reason| ConfigError::CaConfigMapName {
            value: name.clone(),
            reason,
        })?;
        return Ok(ClusterCa::ConfigMap(name));
    }
    if let Some(signer_name) = signer {
        check_signer_name(&signer_name).map_err(|reason| ConfigError::CaSignerName {
            value: signer_name.clone(),
            reason,
        })?;
        let label_selector = match selector {
            Some(raw) => parse_label_selector(&raw)
                .map_err(|reason| ConfigError::LabelSelector { reason })?,
            // An absent selector would match no bundle at all; `{}` matches every bundle of the signer (W05).
            None => serde_json::Value::Object(serde_json::Map::new()),
        };
        return Ok(ClusterCa::ClusterTrustBundle {
            signer_name,
            label_selector,
        });
    }
    Ok(ClusterCa::None)
}

/// CA data is injected into every identity-binding pod, so it must be certificates, and never a key.
fn check_ca_data(data: &str) -> Result<(), String> {
    if data.contains("PRIVATE KEY-----") {
        return Err("it contains a private key".into());
    }
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(data.as_bytes()) {
        let cert = cert.map_err(|e| format!("bad PEM: {e}"))?;
        x509_parser::parse_x509_certificate(&cert)
            .map_err(|e| format!("certificate {} does not parse: {e}", count + 1))?;
        count += 1;
    }
    if count == 0 {
        return Err("no \"-----BEGIN CERTIFICATE-----\" block found".into());
    }
    Ok(())
}

/// ClusterTrustBundle signer names are `<domain>/<path>` (the API server's rule).
fn check_signer_name(name: &str) -> Result<(), String> {
    let Some((domain, path)) = name.split_once('/') else {
        return Err("it has no '/'".into());
    };
    dns_subdomain(domain).map_err(|r| format!("domain {domain:?}: {r}"))?;
    if path.is_empty() {
        return Err("the path after '/' is empty".into());
    }
    Ok(())
}
