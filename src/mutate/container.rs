//! Per-container changes: the Azure env vars and the token mount.

use std::sync::Arc;

use super::denial::Denial;
use super::names::*;
use super::patch::{EnvVar, PatchOp, PatchValue, Pointer, VolumeMount};
use super::record::InjectedIdentity;
use super::view::ContainerView;

/// What one container needs, and what was injected last time (for refreshing, W32).
pub struct ContainerPlan<'p> {
    pub env: &'p [EnvVar],
    pub previous: Option<&'p InjectedIdentity>,
    pub volume_name: &'p Arc<str>,
}

/// A container by where it is: its list's JSON Pointer and its index there.
#[derive(Debug, Clone, Copy)]
pub struct ContainerAt {
    /// `/spec/containers` or `/spec/initContainers`.
    pub list: &'static str,
    pub index: usize,
}

impl ContainerAt {
    /// `rest` inside the container, e.g. `/env/-`.
    fn at(self, rest: &'static str) -> Pointer {
        Pointer::Item {
            list: self.list,
            index: self.index,
            rest,
        }
    }

    /// `rest` inside element `item` of the container's list `field`, e.g. `/env`, 3, `/value`.
    fn item(self, field: &'static str, item: usize, rest: &'static str) -> Pointer {
        Pointer::Nested {
            list: self.list,
            index: self.index,
            field,
            item,
            rest,
        }
    }
}

/// True when the operations write the client or tenant ID (add, refresh or remove), which is what
/// the record must remember.
pub fn container_ops(
    base: ContainerAt,
    container: &ContainerView<'_>,
    plan: &ContainerPlan<'_>,
    ops: &mut Vec<PatchOp>,
) -> Result<bool, Denial> {
    let identity_written = env_ops(base, container, plan, ops);
    mount_op(base, container, plan.volume_name, ops)?;
    Ok(identity_written)
}

fn is_identity(name: &str) -> bool {
    name == ENV_CLIENT_ID || name == ENV_TENANT_ID
}

/// Adds missing variables (by name; user values win), refreshes values this webhook injected for a
/// previous service account, and drops a client ID the current service account no longer has.
/// Replacements come first and removals run from the back, so every index stays valid. True when
/// the client or tenant ID is written.
fn env_ops(
    base: ContainerAt,
    container: &ContainerView<'_>,
    plan: &ContainerPlan<'_>,
    ops: &mut Vec<PatchOp>,
) -> bool {
    let existing = container.env.as_ref();
    let present = |name| existing.and_then(|env| env.first(name));
    let mut identity_written = false;
    let mut any_missing = false;
    for wanted in plan.env {
        match present(wanted.name) {
            Some((index, current)) => {
                let value = current.value();
                if current.value_from.is_none()
                    && was_injected(plan.previous, wanted.name, value)
                    && value != Some(&*wanted.value)
                {
                    identity_written = true;
                    ops.push(PatchOp::replace(
                        base.item("/env", index, "/value"),
                        PatchValue::String(wanted.value.to_string()),
                    ));
                }
            }
            None => {
                identity_written |= is_identity(wanted.name);
                any_missing = true;
            }
        }
    }
    let stale_client_id = plan
        .previous
        .filter(|_| !plan.env.iter().any(|e| e.name == ENV_CLIENT_ID))
        .and_then(|_| {
            existing?.named(ENV_CLIENT_ID).find_map(|(index, e)| {
                let injected =
                    e.value_from.is_none() && was_injected(plan.previous, ENV_CLIENT_ID, e.value());
                injected.then_some(index)
            })
        });
    if let Some(index) = stale_client_id {
        identity_written = true;
        ops.push(PatchOp::remove(base.item("/env", index, "")));
    }
    if !any_missing {
        return identity_written;
    }
    // Looked up again rather than collected in the first pass: the adds must follow the
    // replacements and the removal, and a list per container was an allocation per container.
    let missing = plan
        .env
        .iter()
        .filter(|wanted| present(wanted.name).is_none());
    if container.env.is_none() {
        ops.push(PatchOp::add(
            base.at("/env"),
            PatchValue::EnvVars(missing.cloned().collect()),
        ));
    } else {
        for var in missing {
            ops.push(PatchOp::add(
                base.at("/env/-"),
                PatchValue::EnvVar(var.clone()),
            ));
        }
    }
    identity_written
}

fn was_injected(previous: Option<&InjectedIdentity>, name: &str, value: Option<&str>) -> bool {
    let Some(previous) = previous else {
        return false;
    };
    let injected = match name {
        ENV_CLIENT_ID => previous.client_id.as_str(),
        ENV_TENANT_ID => previous.tenant_id.as_str(),
        _ => return false,
    };
    !injected.is_empty() && value == Some(injected)
}

/// The mount is found by path first, so an earlier injection under another reserved name is reused
/// rather than duplicated (W12); a user volume at the reserved path is refused with a clear message.
fn mount_op(
    base: ContainerAt,
    container: &ContainerView<'_>,
    volume_name: &Arc<str>,
    ops: &mut Vec<PatchOp>,
) -> Result<(), Denial> {
    let wanted = VolumeMount {
        name: volume_name.clone(),
        mount_path: MOUNT_PATH,
        read_only: true,
    };
    let Some(mounts) = container.volume_mounts.as_ref() else {
        ops.push(PatchOp::add(
            base.at("/volumeMounts"),
            PatchValue::VolumeMounts(vec![wanted]),
        ));
        return Ok(());
    };
    if let Some((index, mount)) = mounts
        .matching(|m| m.mount_path.as_str() == MOUNT_PATH)
        .next()
    {
        let name = mount.name.as_str();
        if name == &**volume_name && mount.read_only == Some(true) && mount.sub_path.is_none() {
            return Ok(());
        }
        if name != &**volume_name && !name.starts_with(VOLUME_NAME_PREFIX) {
            return Err(Denial::invalid_pod(format!(
                "container {:?} mounts volume {name:?} at {MOUNT_PATH}, which is reserved for the workload \
                 identity token: mount it elsewhere or list the container in {SKIP_CONTAINERS_ANNOTATION}",
                container.name.as_str()
            )));
        }
        ops.push(PatchOp::replace(
            base.item("/volumeMounts", index, ""),
            PatchValue::VolumeMount(wanted),
        ));
        return Ok(());
    }
    // The webhook's volume name has the reserved prefix, so a mount of it is one the list keeps.
    match mounts
        .matching(|m| m.name.as_str() == &**volume_name)
        .next()
    {
        Some((index, _)) => ops.push(PatchOp::replace(
            base.item("/volumeMounts", index, ""),
            PatchValue::VolumeMount(wanted),
        )),
        None => ops.push(PatchOp::add(
            base.at("/volumeMounts/-"),
            PatchValue::VolumeMount(wanted),
        )),
    }
    Ok(())
}
