//! The pure mutation core: `(Settings, pod view, service account) -> patch + warnings | rejection`.
//! No I/O, no clock, no async; every rule is unit-tested here.

pub mod client_ids;
mod container;
mod identity;
pub mod names;
pub mod patch;
mod proxy;
pub mod settings;
mod record;
pub mod service_account;
pub mod view;
mod volume;

use service_account::ServiceAccountMeta;
use crate::mutate::settings::{ClusterCa, Settings};

use container::{container_ops, ContainerPlan};
use identity::Identity;
use names::*;
use patch::{EnvVar, PatchOp};
use record::InjectedIdentity;
use view::{ContainerView, PodView};

pub use volume::derived_volume_name;

/// The change to make: field-level operations on the request object, and warnings for the user.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mutation {
    pub ops: Vec<PatchOp>,
    pub warnings: Vec<String>,
}

/// A pod the webhook refuses, with the HTTP-style code and a message saying what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub code: u16,
    pub message: String,
}

impl Rejection {
    /// The pod or its service account is misconfigured.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Rejection {
            code: 400,
            message: message.into(),
        }
    }
}

/// Refuses what cannot be a pod before anything is looked up for it.
pub fn check_shape(pod: &PodView<'_>) -> Result<(), Rejection> {
    spec_of(pod).map(|_| ())
}

fn spec_of<'p, 'a>(pod: &'p PodView<'a>) -> Result<&'p view::SpecView<'a>, Rejection> {
    pod.spec
        .as_ref()
        .ok_or_else(|| Rejection::bad_request("the pod has no spec"))
}

/// Plans the mutation of one pod.
pub fn plan(
    settings: &Settings,
    pod: &PodView<'_>,
    sa: &ServiceAccountMeta,
) -> Result<Mutation, Rejection> {
    let spec = spec_of(pod)?;
    let mut warnings = Vec::new();
    // Before the identity, so that proxy errors win over token-expiration errors as upstream.
    let proxy = proxy::plan(settings, pod, spec, &mut warnings)?;
    let identity = identity::resolve(settings, pod, sa, &mut warnings)?;
    let volume_name = volume::volume_name(pod);
    let env = desired_env(settings, &identity);
    let previous = InjectedIdentity::previous(pod);
    let container_plan = ContainerPlan {
        env: &env,
        previous: previous.as_ref(),
        volume_name: &volume_name,
    };

    let skip = skip_list(pod);
    let mut ops = Vec::new();
    let groups: [(&str, &[ContainerView<'_>]); 2] = [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("containers", spec.containers.as_deref().unwrap_or_default()),
    ];
    for (field, containers) in groups {
        for (index, container) in containers.iter().enumerate() {
            let name = container.name.as_str();
            // The proxy containers need neither the Azure env nor the token (W09).
            if skip.contains(&name) || proxy.as_ref().is_some_and(|p| p.owns(field, name)) {
                continue;
            }
            container_ops(
                &format!("/spec/{field}/{index}"),
                container,
                &container_plan,
                &mut ops,
            )?;
        }
    }
    // Inserted only now: the operations above address existing containers by index.
    if let Some(proxy) = &proxy {
        proxy.insert_ops(spec, &mut ops);
    }
    for name in &skip {
        let known = proxy.as_ref().is_some_and(|p| p.claims(name))
            || groups
                .iter()
                .any(|(_, containers)| containers.iter().any(|c| c.name.as_str() == *name));
        if !known {
            warnings.push(format!(
                "{SKIP_CONTAINERS_ANNOTATION} names container {name:?}, which the pod does not have"
            ));
        }
    }

    ops.extend(volume::volume_op(
        pod,
        &volume_name,
        volume::sources(&identity),
    ));
    let injected = InjectedIdentity {
        client_id: identity.client_id.clone(),
        tenant_id: identity.tenant_id.clone(),
    };
    ops.extend(record::record_op(pod, &injected));
    Ok(Mutation { ops, warnings })
}

/// Names, values and order as upstream; empty values are never injected.
fn desired_env(settings: &Settings, identity: &Identity<'_>) -> Vec<EnvVar> {
    let mut env = Vec::with_capacity(8);
    let mut push = |name: &'static str, value: &str| {
        if !value.is_empty() {
            env.push(EnvVar {
                name,
                value: value.to_owned(),
            });
        }
    };
    push(ENV_CLIENT_ID, &identity.client_id);
    push(ENV_TENANT_ID, &identity.tenant_id);
    push(ENV_TOKEN_FILE, TOKEN_FILE);
    push(ENV_AUTHORITY_HOST, &settings.authority_host);
    if let Some(ib) = identity.identity_binding {
        push(ENV_TOKEN_PROXY, &ib.token_proxy);
        push(ENV_SNI_NAME, &ib.sni_name);
        if volume::projects_ca_file(identity) {
            push(ENV_CA_FILE, CA_FILE);
        }
        if let ClusterCa::Data(pem) = &ib.ca {
            push(ENV_CA_DATA, pem);
        }
    }
    env
}

/// `;`-separated, each entry trimmed; empty entries ignored.
pub(crate) fn skip_list<'p>(pod: &'p PodView<'_>) -> Vec<&'p str> {
    pod.annotation(SKIP_CONTAINERS_ANNOTATION)
        .map(|list| {
            list.split(';')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod proxy_tests;
#[cfg(test)]
mod tests;
