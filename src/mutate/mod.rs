//! The pure mutation core: `(Settings, runtime facts, pod view, service account) -> Plan | Denial`.
//! No I/O, no clock, no async; every rule is unit-tested here.

pub mod client_ids;
mod container;
pub mod denial;
mod identity;
pub mod names;
pub mod patch;
mod patch_json;
mod proxy;
mod record;
pub mod service_account;
pub mod settings;
pub mod view;
mod volume;

use std::sync::{Arc, LazyLock};

use crate::mutate::settings::{ClusterCa, Settings};
use service_account::ServiceAccountMeta;

use client_ids::ClientIds;
use container::{container_ops, ContainerAt, ContainerPlan};
use denial::Denial;
use identity::Identity;
use names::*;
use patch::{EnvVar, PatchOp};
use record::InjectedIdentity;
use view::PodView;

pub use volume::derived_volume_name;

/// Facts about the cluster learnt at run time (from the API server), not configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Runtime {
    /// Inject the proxy as a native sidecar (an init container with `restartPolicy: Always`): the
    /// API server is 1.32 or later.
    pub native_sidecars: bool,
}

/// The whole decision for one admitted pod, so that nobody downstream re-derives part of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Field-level operations on the request object; empty when the pod needs no change.
    pub ops: Vec<PatchOp>,
    /// Warnings for the pod's owner.
    pub warnings: Vec<String>,
    pub identity: PlannedIdentity,
    /// The client IDs the pod's injected containers present once mutated (what RBAC must allow).
    pub client_ids: ClientIds,
    /// Name of the projected token volume.
    pub volume: Arc<str>,
    /// The containers given the Azure env and the token mount, init containers first.
    pub containers: Vec<ContainerRef>,
    /// Containers of the pod left alone because `skip-containers` names them.
    pub skipped: Vec<String>,
    /// Whether the pod asked for, and gets (or already has), the proxy sidecar.
    pub proxy: bool,
    /// Names of the environment variables injected into each container, in order.
    pub env: Vec<&'static str>,
}

/// The identity the pod's containers receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedIdentity {
    /// Empty when the service account names no client ID.
    pub client_id: Arc<str>,
    pub tenant_id: Arc<str>,
    /// Audience of the projected token.
    pub audience: Arc<str>,
    pub token_expiration_seconds: i64,
    /// The pod opted into identity binding and the webhook has it configured.
    pub identity_binding: bool,
}

/// One of the two container lists of a pod spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerGroup {
    Init,
    App,
}

impl ContainerGroup {
    /// The field of the pod spec holding the list.
    pub fn field(self) -> &'static str {
        match self {
            ContainerGroup::Init => "initContainers",
            ContainerGroup::App => "containers",
        }
    }

    /// The list's JSON Pointer in a pod.
    pub fn pointer(self) -> &'static str {
        match self {
            ContainerGroup::Init => "/spec/initContainers",
            ContainerGroup::App => "/spec/containers",
        }
    }
}

/// A container by list and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub group: ContainerGroup,
    pub name: String,
}

/// Refuses what cannot be a pod before anything is looked up for it.
pub fn check_shape(pod: &PodView<'_>) -> Result<(), Denial> {
    spec_of(pod).map(|_| ())
}

fn spec_of<'p, 'a>(pod: &'p PodView<'a>) -> Result<&'p view::SpecView<'a>, Denial> {
    pod.spec
        .as_ref()
        .ok_or_else(|| Denial::invalid_pod("the pod has no spec"))
}

/// Plans the mutation of one pod.
pub fn plan(
    settings: &Settings,
    runtime: Runtime,
    pod: &PodView<'_>,
    sa: &ServiceAccountMeta,
) -> Result<Plan, Denial> {
    plan_reusing(settings, runtime, pod, sa, Vec::new())
}

/// As [`plan`], writing the operations into `ops` (emptied first), so that a caller planning one
/// pod after another can hand back the list of the previous plan instead of allocating a new one.
pub fn plan_reusing(
    settings: &Settings,
    runtime: Runtime,
    pod: &PodView<'_>,
    sa: &ServiceAccountMeta,
    mut ops: Vec<PatchOp>,
) -> Result<Plan, Denial> {
    ops.clear();
    let spec = spec_of(pod)?;
    let mut warnings = Vec::new();
    // Before the identity, so that proxy errors win over token-expiration errors as upstream.
    let proxy = proxy::requested(settings, runtime, pod, spec, &mut warnings)?;
    let identity = identity::resolve(settings, pod, sa, &mut warnings)?;
    // One copy for every mount, the volume and the plan.
    let shared_volume_name = volume::volume_name(pod);
    let env = desired_env(settings, &identity);
    let previous = InjectedIdentity::previous(pod);
    let container_plan = ContainerPlan {
        env: &env,
        previous: previous.as_ref(),
        volume_name: &shared_volume_name,
    };

    let skip = skip_list(pod);
    // Sized for the common case (every env var and the mount added one by one, plus the volume,
    // the record and the proxy's): growing it op by op was a chain of reallocations per review.
    ops.reserve(spec.container_count() * (env.len() + 1) + 4);
    let touched = touch_containers(spec, &skip, proxy.as_ref(), &container_plan, &mut ops)?;
    // Inserted only now: the operations above address existing containers by index.
    if let Some(proxy) = &proxy {
        proxy.insert_ops(spec, &mut ops);
    }
    if !skip.is_empty() {
        warnings.extend(unknown_skipped(spec, &skip, proxy.as_ref()));
    }
    ops.extend(volume::volume_op(
        pod,
        &shared_volume_name,
        volume::sources(&identity),
    ));
    // The record says which values this webhook put into the env: a pod whose values were all
    // there already (written by hand, by another webhook or by `inject`) gets no record, and so
    // no patch at all when nothing else is missing.
    if touched.identity_written {
        let injected = InjectedIdentity {
            client_id: &*identity.client_id,
            tenant_id: &*identity.tenant_id,
        };
        ops.extend(record::record_op(pod, &injected));
    }
    let client_ids =
        client_ids::presented_client_ids(pod, &identity.client_id, &skip, previous.as_ref());
    Ok(Plan {
        ops,
        warnings,
        client_ids,
        volume: Arc::clone(&shared_volume_name),
        containers: touched.containers,
        skipped: touched.skipped,
        proxy: proxy.is_some(),
        env: env.iter().map(|var| var.name).collect(),
        identity: PlannedIdentity {
            client_id: identity.client_id,
            tenant_id: identity.tenant_id,
            audience: Arc::clone(identity.audience),
            token_expiration_seconds: identity.token_expiration_seconds,
            identity_binding: identity.identity_binding.is_some(),
        },
    })
}

/// What the per-container operations did.
struct Touched {
    containers: Vec<ContainerRef>,
    skipped: Vec<String>,
    /// Some container's client or tenant ID was added, refreshed or removed.
    identity_written: bool,
}

/// Gives every container, init containers first, the env and the mount, except the skipped ones
/// and the proxy's own.
fn touch_containers(
    spec: &view::SpecView<'_>,
    skip: &[&str],
    proxy: Option<&proxy::Proxy<'_>>,
    plan: &ContainerPlan<'_>,
    ops: &mut Vec<PatchOp>,
) -> Result<Touched, Denial> {
    let mut touched = Touched {
        containers: Vec::with_capacity(spec.container_count()),
        skipped: Vec::new(),
        identity_written: false,
    };
    for group in [ContainerGroup::Init, ContainerGroup::App] {
        for (index, container) in spec.containers_of(group).iter().enumerate() {
            let name = container.name.as_str();
            if skip.contains(&name) {
                touched.skipped.push(name.to_owned());
                continue;
            }
            // The proxy containers need neither the Azure env nor the token (W09).
            if proxy.is_some_and(|p| p.owns(group, name)) {
                continue;
            }
            let at = ContainerAt {
                list: group.pointer(),
                index,
            };
            touched.identity_written |= container_ops(at, container, plan, ops)?;
            touched.containers.push(ContainerRef {
                group,
                name: name.to_owned(),
            });
        }
    }
    Ok(touched)
}

/// A warning for each skip-list name that is no container of the pod (nor the proxy's). Out of
/// line, as the proxy's paths: few pods name containers to skip.
#[cold]
#[inline(never)]
fn unknown_skipped(
    spec: &view::SpecView<'_>,
    skip: &[&str],
    proxy: Option<&proxy::Proxy<'_>>,
) -> Vec<String> {
    let exists = |name: &str| {
        [ContainerGroup::Init, ContainerGroup::App]
            .into_iter()
            .any(|group| {
                spec.containers_of(group)
                    .iter()
                    .any(|c| c.name.as_str() == name)
            })
    };
    skip.iter()
        .filter(|name| !proxy.is_some_and(|p| p.claims(name)) && !exists(name))
        .map(|name| {
            format!("{SKIP_CONTAINERS_ANNOTATION} names container {name:?}, which the pod does not have")
        })
        .collect()
}

/// The fixed paths injected as values, allocated once per process instead of once per review.
static TOKEN_FILE_VALUE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(TOKEN_FILE));
static CA_FILE_VALUE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(CA_FILE));

/// Names, values and order as upstream; empty values are never injected. Each value is shared by
/// every container that gets it, and with the settings or the identity it comes from.
fn desired_env(settings: &Settings, identity: &Identity<'_>) -> Vec<EnvVar> {
    let mut env = Vec::with_capacity(8);
    let mut push = |name: &'static str, value: &Arc<str>| {
        if !value.is_empty() {
            env.push(EnvVar {
                name,
                value: Arc::clone(value),
            });
        }
    };
    push(ENV_CLIENT_ID, &identity.client_id);
    push(ENV_TENANT_ID, &identity.tenant_id);
    push(ENV_TOKEN_FILE, &TOKEN_FILE_VALUE);
    push(ENV_AUTHORITY_HOST, &settings.authority_host);
    if let Some(ib) = identity.identity_binding {
        push(ENV_TOKEN_PROXY, &ib.token_proxy);
        push(ENV_SNI_NAME, &ib.sni_name);
        if volume::projects_ca_file(identity) {
            push(ENV_CA_FILE, &CA_FILE_VALUE);
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
