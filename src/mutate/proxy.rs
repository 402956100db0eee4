//! The optional proxy sidecar (`azwi-proxy`) and its iptables init container (`azwi-proxy-init`),
//! injected when the pod asks for them with `inject-proxy-sidecar: "true"`.

use std::sync::Arc;

use crate::mutate::settings::{ContainerResources, Settings};

use super::denial::Denial;
use super::identity::parse_int;
use super::names::*;
use super::patch::{
    Capabilities, Container, ContainerPort, EnvVar, ExecAction, Lifecycle, LifecycleHandler,
    PatchOp, PatchValue, Pointer, SecurityContext,
};
use super::view::{ContainerView, PodView, SpecView};
use super::{ContainerGroup, Runtime};

/// The proxy a pod asked for. Existing containers with the proxy names are taken as an earlier
/// injection: they are neither duplicated nor given the Azure env and mount (W09).
#[derive(Debug)]
pub struct Proxy<'s> {
    settings: &'s Settings,
    native_sidecars: bool,
    port: u16,
}

/// `None` when the pod does not ask for the proxy. Checks run in upstream order (hostNetwork, then
/// port), and before anything about the token, so that proxy errors win as they do upstream.
pub fn requested<'s>(
    settings: &'s Settings,
    runtime: Runtime,
    pod: &PodView<'_>,
    spec: &SpecView<'_>,
    warnings: &mut Vec<String>,
) -> Result<Option<Proxy<'s>>, Denial> {
    match pod.annotation(INJECT_PROXY_ANNOTATION) {
        None => Ok(None),
        Some(value) => asked(settings, runtime, pod, spec, value, warnings),
    }
}

/// [`requested`] for a pod that carries the annotation. Out of line, as the other paths only a
/// proxy pod takes: the common path of planning stays compact in the instruction cache.
#[cold]
#[inline(never)]
fn asked<'s>(
    settings: &'s Settings,
    runtime: Runtime,
    pod: &PodView<'_>,
    spec: &SpecView<'_>,
    value: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<Proxy<'s>>, Denial> {
    // Upstream injects whenever the key is present, even for "false" (W11).
    if !value.eq_ignore_ascii_case("true") {
        if !value.eq_ignore_ascii_case("false") {
            warnings.push(format!(
                "{INJECT_PROXY_ANNOTATION}: value {value:?} is not \"true\", so no proxy sidecar is injected"
            ));
        }
        return Ok(None);
    }
    if spec.host_network == Some(true) {
        return Err(Denial::invalid_pod(format!(
            "hostNetwork is set to true, cannot inject proxy sidecar: its iptables rules would redirect \
             the node's traffic; remove {INJECT_PROXY_ANNOTATION} or hostNetwork"
        )));
    }
    let proxy = Proxy {
        settings,
        native_sidecars: runtime.native_sidecars,
        port: port(pod)?,
    };
    proxy.check_name_clashes(spec)?;
    proxy.check_port_clashes(spec)?;
    Ok(Some(proxy))
}

/// Base-10 as upstream (a leading `+` is accepted, W20), but limited to real ports (W10).
fn port(pod: &PodView<'_>) -> Result<u16, Denial> {
    let Some(raw) = pod.annotation(PROXY_PORT_ANNOTATION) else {
        return Ok(DEFAULT_PROXY_PORT);
    };
    match parse_int(raw).map(u16::try_from) {
        Some(Ok(port)) if port != 0 => Ok(port),
        Some(_) => Err(Denial::invalid_pod(format!(
            "{PROXY_PORT_ANNOTATION} is {raw:?}, which is out of range: the proxy sidecar port must be \
             between 1 and 65535"
        ))),
        None => Err(Denial::invalid_pod(format!(
            "{PROXY_PORT_ANNOTATION} is {raw:?}, which is not a whole number: the proxy sidecar port \
             must be between 1 and 65535"
        ))),
    }
}

impl Proxy<'_> {
    /// Which list each proxy container belongs in: native sidecars are init containers.
    fn home(&self, name: &str) -> ContainerGroup {
        if name == PROXY_CONTAINER && !self.native_sidecars {
            ContainerGroup::App
        } else {
            ContainerGroup::Init
        }
    }

    fn is_proxy_name(name: &str) -> bool {
        name == PROXY_CONTAINER || name == PROXY_INIT_CONTAINER
    }

    /// Whether `name` is one of the proxy containers, wherever it is (it is skipped by the skip-list
    /// check too: the webhook adds it).
    pub fn claims(&self, name: &str) -> bool {
        Self::is_proxy_name(name)
    }

    /// Whether the existing container `name` in `group` is this webhook's own proxy container.
    pub fn owns(&self, group: ContainerGroup, name: &str) -> bool {
        Self::is_proxy_name(name) && self.home(name) == group
    }

    /// Pod names must be unique across both lists, so a proxy name in the other list would make the
    /// API server refuse the pod with a message that does not mention the proxy (W27).
    fn check_name_clashes(&self, spec: &SpecView<'_>) -> Result<(), Denial> {
        for group in [ContainerGroup::Init, ContainerGroup::App] {
            let field = group.field();
            let clash = spec
                .containers_of(group)
                .iter()
                .map(|c| c.name.as_str())
                .find(|name| Self::is_proxy_name(name) && self.home(name) != group);
            if let Some(name) = clash {
                let mode = if self.native_sidecars {
                    "as a native sidecar "
                } else {
                    ""
                };
                return Err(Denial::invalid_pod(format!(
                    "container {name:?} in spec.{field} clashes with the container of that name this webhook \
                     injects {mode}into spec.{} for {INJECT_PROXY_ANNOTATION}: rename the container or \
                     remove the annotation",
                    self.home(name).field()
                )));
            }
        }
        Ok(())
    }

    /// All containers share the pod's network namespace, so a user container taking the proxy's TCP
    /// port would make one of the two fail to bind, and the traffic the proxy-init rules redirect to
    /// that port would reach whichever bound first (W27). Only declared ports can be checked:
    /// `ports` is informational, a container may listen on any port without declaring it, and
    /// nothing else in the pod says which. One-shot init containers clash only with a native
    /// sidecar, which starts before them; a classic sidecar starts after they have exited, so
    /// refusing them there would refuse pods that run fine upstream. Skipped containers are
    /// checked too, as the skip list does not take them off the network. Runs after the name check,
    /// so proxy names here are this webhook's own containers from an earlier invocation, whose
    /// sidecar declares the port itself.
    fn check_port_clashes(&self, spec: &SpecView<'_>) -> Result<(), Denial> {
        let port = i64::from(self.port);
        for group in [ContainerGroup::Init, ContainerGroup::App] {
            let field = group.field();
            for container in spec.containers_of(group) {
                let name = container.name.as_str();
                let exits_first = group == ContainerGroup::Init
                    && !self.native_sidecars
                    && !container.keeps_running();
                if Self::is_proxy_name(name) || exits_first {
                    continue;
                }
                let ports = container.ports().map_err(|err| {
                    Denial::invalid_pod(format!(
                        "container {name:?} in spec.{field} has ports that cannot be read: {err}"
                    ))
                })?;
                if ports
                    .iter()
                    .any(|p| p.container_port == Some(port) && p.is_tcp())
                {
                    return Err(Denial::invalid_pod(format!(
                        "container {name:?} in spec.{field} already declares port {port}, which the \
                         {PROXY_CONTAINER} sidecar listens on: pick another port with {PROXY_PORT_ANNOTATION}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Adds the missing proxy containers: native `[azwi-proxy, <init…>, azwi-proxy-init]`; classic
    /// init `[<init…>, azwi-proxy-init]` and containers `[azwi-proxy, <containers…>]` (W15 kept).
    /// The caller must emit these after every operation that addresses an existing container by
    /// index: RFC 6902 applies operations in order, so the insert at 0 then shifts nothing that is
    /// still to be addressed.
    #[cold]
    #[inline(never)]
    pub fn insert_ops(&self, spec: &SpecView<'_>, ops: &mut Vec<PatchOp>) {
        let init_list = spec.init_containers.as_deref();
        let containers = spec.containers.as_deref();
        let init = (!has(init_list, PROXY_INIT_CONTAINER)).then(|| self.init_container());
        if self.native_sidecars {
            let sidecar = (!has(init_list, PROXY_CONTAINER)).then(|| self.sidecar());
            insert(ContainerGroup::Init, init_list, sidecar, init, ops);
        } else {
            let sidecar = (!has(containers, PROXY_CONTAINER)).then(|| self.sidecar());
            insert(ContainerGroup::Init, init_list, None, init, ops);
            insert(ContainerGroup::App, containers, sidecar, None, ops);
        }
    }

    fn init_container(&self) -> Container {
        Container {
            name: PROXY_INIT_CONTAINER,
            image: self.settings.proxy.init_image.clone(),
            image_pull_policy: "IfNotPresent",
            args: Vec::new(),
            env: vec![EnvVar {
                name: ENV_PROXY_PORT,
                value: Arc::from(itoa::Buffer::new().format(self.port)),
            }],
            ports: Vec::new(),
            resources: configured(&self.settings.proxy.init_resources),
            lifecycle: None,
            // Installs iptables rules in the pod's network namespace.
            security_context: SecurityContext {
                allow_privilege_escalation: None,
                capabilities: Capabilities {
                    add: vec!["NET_ADMIN"],
                    drop: vec!["ALL"],
                },
                privileged: true,
                read_only_root_filesystem: None,
                run_as_non_root: false,
                run_as_user: Some(0),
            },
            restart_policy: None,
        }
    }

    fn sidecar(&self) -> Container {
        let port_arg = format!("--proxy-port={}", self.port);
        let level = match self.settings.proxy.log_level.as_str() {
            "" => DEFAULT_PROXY_LOG_LEVEL,
            level => level,
        };
        let level_arg = format!("--log-level={level}");
        Container {
            name: PROXY_CONTAINER,
            image: self.settings.proxy.image.clone(),
            image_pull_policy: "IfNotPresent",
            args: vec![port_arg.clone(), level_arg.clone()],
            env: Vec::new(),
            ports: vec![ContainerPort {
                container_port: self.port,
            }],
            resources: configured(&self.settings.proxy.resources),
            // The kubelet starts the containers after this one only once the probe sees the proxy answer.
            lifecycle: Some(Lifecycle {
                post_start: LifecycleHandler {
                    exec: ExecAction {
                        command: vec!["/proxy".into(), port_arg, "--probe".into(), level_arg],
                    },
                },
            }),
            security_context: SecurityContext {
                allow_privilege_escalation: Some(false),
                capabilities: Capabilities {
                    add: Vec::new(),
                    drop: vec!["ALL"],
                },
                privileged: false,
                read_only_root_filesystem: Some(true),
                run_as_non_root: true,
                run_as_user: None,
            },
            restart_policy: self.native_sidecars.then_some("Always"),
        }
    }
}

/// Upstream injects no `resources`; the field appears only when the webhook is configured with some.
fn configured(resources: &ContainerResources) -> Option<ContainerResources> {
    (!resources.is_empty()).then(|| resources.clone())
}

fn has(list: Option<&[ContainerView<'_>]>, name: &str) -> bool {
    list.unwrap_or_default()
        .iter()
        .any(|c| c.name.as_str() == name)
}

/// An absent or `null` list is added whole, since there is nothing to index into.
fn insert(
    group: ContainerGroup,
    existing: Option<&[ContainerView<'_>]>,
    first: Option<Container>,
    last: Option<Container>,
    ops: &mut Vec<PatchOp>,
) {
    if existing.is_none() {
        let whole: Vec<Container> = first.into_iter().chain(last).collect();
        if !whole.is_empty() {
            ops.push(PatchOp::add(
                Pointer::Fixed(group.pointer()),
                PatchValue::Containers(whole),
            ));
        }
        return;
    }
    if let Some(container) = last {
        ops.push(PatchOp::add(
            Pointer::Fixed(list_end(group)),
            PatchValue::Container(Box::new(container)),
        ));
    }
    if let Some(container) = first {
        ops.push(PatchOp::add(
            Pointer::Item {
                list: group.pointer(),
                index: 0,
                rest: "",
            },
            PatchValue::Container(Box::new(container)),
        ));
    }
}

/// The place past the last element of the list, where `add` appends.
fn list_end(group: ContainerGroup) -> &'static str {
    match group {
        ContainerGroup::Init => "/spec/initContainers/-",
        ContainerGroup::App => "/spec/containers/-",
    }
}
