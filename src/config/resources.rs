//! Requests and limits of the injected proxy containers, from `PROXY_{CPU,MEMORY}_{REQUEST,LIMIT}` and
//! `PROXY_INIT_{CPU,MEMORY}_{REQUEST,LIMIT}`. Unset or empty means not set, so by default the containers
//! get no `resources`, as upstream injects them.

use super::env::{self, EnvSource};
use super::error::ConfigError;
use super::quantity::{self, Quantity};
use crate::mutate::settings::{ContainerResources, ResourceList};

/// The four variables of one injected container.
#[derive(Debug, Clone, Copy)]
pub struct ResourceVars {
    pub cpu_request: &'static str,
    pub memory_request: &'static str,
    pub cpu_limit: &'static str,
    pub memory_limit: &'static str,
}

/// The `azwi-proxy` sidecar.
pub const PROXY: ResourceVars = ResourceVars {
    cpu_request: env::PROXY_CPU_REQUEST,
    memory_request: env::PROXY_MEMORY_REQUEST,
    cpu_limit: env::PROXY_CPU_LIMIT,
    memory_limit: env::PROXY_MEMORY_LIMIT,
};

/// The `azwi-proxy-init` init container.
pub const PROXY_INIT: ResourceVars = ResourceVars {
    cpu_request: env::PROXY_INIT_CPU_REQUEST,
    memory_request: env::PROXY_INIT_MEMORY_REQUEST,
    cpu_limit: env::PROXY_INIT_CPU_LIMIT,
    memory_limit: env::PROXY_INIT_MEMORY_LIMIT,
};

/// Reads and checks one container's variables: each must be a quantity, and a request may not exceed
/// the limit of the same resource (the API server would refuse every proxied pod).
pub fn container_resources(
    env: &dyn EnvSource,
    vars: ResourceVars,
) -> Result<ContainerResources, ConfigError> {
    let cpu_request = read(env, vars.cpu_request, "request")?;
    let memory_request = read(env, vars.memory_request, "request")?;
    let cpu_limit = read(env, vars.cpu_limit, "limit")?;
    let memory_limit = read(env, vars.memory_limit, "limit")?;
    check_order(&cpu_request, vars.cpu_request, &cpu_limit, vars.cpu_limit)?;
    check_order(
        &memory_request,
        vars.memory_request,
        &memory_limit,
        vars.memory_limit,
    )?;
    Ok(ContainerResources {
        requests: ResourceList {
            cpu: cpu_request.map(|(raw, _)| raw),
            memory: memory_request.map(|(raw, _)| raw),
        },
        limits: ResourceList {
            cpu: cpu_limit.map(|(raw, _)| raw),
            memory: memory_limit.map(|(raw, _)| raw),
        },
    })
}

/// The value as given (the API server canonicalises it) and its parsed amount.
type Setting = Option<(String, Quantity)>;

fn read(
    env: &dyn EnvSource,
    var: &'static str,
    kind: &'static str,
) -> Result<Setting, ConfigError> {
    let Some(raw) = env.non_empty(var) else {
        return Ok(None);
    };
    match quantity::parse(&raw) {
        Ok(amount) => Ok(Some((raw, amount))),
        Err(reason) => Err(ConfigError::ResourceQuantity {
            var,
            value: raw,
            reason,
            kind,
        }),
    }
}

fn check_order(
    request: &Setting,
    request_var: &'static str,
    limit: &Setting,
    limit_var: &'static str,
) -> Result<(), ConfigError> {
    match (request, limit) {
        (Some((request, requested)), Some((limit, limited))) if requested > limited => {
            Err(ConfigError::RequestAboveLimit {
                request_var,
                request: request.clone(),
                limit_var,
                limit: limit.clone(),
            })
        }
        _ => Ok(()),
    }
}
