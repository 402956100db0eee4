//! `azwi-webhook inject`: the webhook's mutation applied offline to manifests, for GitOps pipelines
//! and for seeing what the webhook would do. Same core, same rules, no cluster needed.
//!
//! - Input: multi-document YAML or a JSON object stream, from files or standard input. Pods and the
//!   pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs and CronJobs are
//!   considered, also inside `List`s; every other document passes through unchanged, in order.
//! - Selection as the API server's: the webhook configuration's rules (pods, CREATE),
//!   `namespaceSelector` (against the labels of the input's Namespace objects, plus the
//!   `kubernetes.io/metadata.name` label every namespace has) and `objectSelector` (against the pod's
//!   or the template's labels). The configuration is the shipped one (compiled in) or
//!   `--webhook-config`. A pod it does not select passes through unchanged, as a cluster would create
//!   it; a warning says so when the pod asked for the webhook (its labels match the objectSelector)
//!   but its namespace or the rules keep it away. `--all` does not apply the configuration at all.
//! - Service accounts: the input, then `--service-account` files, then (with `--from-cluster`) the
//!   cluster. A template pod's namespace is its workload's namespace.
//! - Template volume names: a template has no name, and its pods' names are made by a controller
//!   (a Deployment's pods get `generateName: <deployment>-<replicaset hash>-`, unknowable offline). The
//!   volume is named as for a pod with `generateName: <workload name>-`, i.e. from
//!   `sha256("<workload>- (prefix)")`. That differs from what the webhook would compute for the real pod,
//!   but it does not matter: at admission the webhook reuses any existing
//!   `azure-workload-identity-reserved-*` volume (W12), so an injected template's pods keep this one and
//!   the webhook's second pass changes nothing.
//! - Anything that would make the webhook reject a pod, or a missing service account, is an error,
//!   and nothing is printed; `--explain` reports those per workload instead.

mod accounts;
mod config_map;
mod documents;
mod explain;
mod label_selector;
mod namespaces;
mod output;
mod process;
mod rbac;
mod selection;
mod webhook_config;
mod workloads;
mod yaml;

use std::io::{Read, Write};

use crate::config::{self, ConfigError, EnvSource, InjectArgs, Input};
use documents::Location;

pub use config_map::CONFIG_MAP_NAME;

/// Exit status when the input cannot be injected (configuration errors use [`config::EXIT_CODE`]).
pub const EXIT_FAILURE: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("{location}: not valid YAML or JSON: {message}")]
    Syntax { location: Location, message: String },
    #[error("{location}: {field}: {message}")]
    Invalid {
        location: Location,
        field: String,
        message: String,
    },
    #[error("{path}: {message}")]
    ConfigMap { path: String, message: String },
    #[error("--webhook-config {path}: {message}")]
    WebhookConfig { path: String, message: String },
    #[error(
        "{location}: {workload}: service account {namespace}/{name} not found in the input{where_else}"
    )]
    MissingServiceAccount {
        location: Location,
        workload: String,
        namespace: String,
        name: String,
        where_else: &'static str,
    },
    #[error("{location}: {workload}: the webhook would reject the pod ({reason}): {message}")]
    Rejected {
        location: Location,
        workload: String,
        reason: &'static str,
        message: String,
    },
    #[error("cluster: {message}")]
    Cluster { message: String },
    #[error("{message}")]
    Internal { message: String },
}

impl InjectError {
    pub fn exit_code(&self) -> u8 {
        match self {
            InjectError::Config(e) => u8::try_from(e.exit_code()).unwrap_or(EXIT_FAILURE),
            _ => EXIT_FAILURE,
        }
    }
}

/// What to print where.
#[derive(Debug, Default)]
pub struct Printed {
    pub stdout: String,
    /// `Warning: ...` lines, as kubectl shows admission warnings.
    pub warnings: Vec<String>,
}

/// Runs `inject` on a current-thread runtime (used only to read service accounts from the cluster) and
/// returns the process exit status.
pub fn run(
    args: &InjectArgs,
    env: &dyn EnvSource,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run_async(args, env, stdin, stdout, stderr)),
        Err(e) => {
            let _ = writeln!(stderr, "azwi-webhook inject: cannot start a runtime: {e}");
            EXIT_FAILURE
        }
    }
}

/// [`run`] for callers that already have a runtime (tests against the fake API server).
pub async fn run_async(
    args: &InjectArgs,
    env: &dyn EnvSource,
    stdin: &mut dyn Read,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    match execute(args, env, stdin).await {
        Ok(printed) => {
            for warning in &printed.warnings {
                let _ = writeln!(stderr, "Warning: {warning}");
            }
            match stdout
                .write_all(printed.stdout.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => 0,
                Err(e) => {
                    let _ = writeln!(stderr, "azwi-webhook inject: cannot write the output: {e}");
                    EXIT_FAILURE
                }
            }
        }
        Err(e) => {
            let _ = writeln!(stderr, "azwi-webhook inject: {e}");
            e.exit_code()
        }
    }
}

/// Everything, computed in memory before anything is printed, so a failure prints nothing partial.
pub async fn execute(
    args: &InjectArgs,
    env: &dyn EnvSource,
    stdin: &mut dyn Read,
) -> Result<Printed, InjectError> {
    let settings = match &args.config_map {
        Some(path) => {
            let data = config_map::load(path)?;
            config::build_settings(
                &args.mutation,
                &config_map::ConfigMapEnv {
                    data,
                    fallback: env,
                },
            )?
        }
        None => config::build_settings(&args.mutation, env)?,
    };
    let namespace = args.namespace.as_str();
    let mut input = Vec::new();
    for source in args.inputs() {
        let (name, text) = read(&source, stdin)?;
        input.extend(documents::parse(&name, &text)?);
    }
    let mut accounts = accounts::Accounts::default();
    accounts.add_documents(&input, &accounts::Origin::Input, namespace)?;
    for path in &args.service_accounts {
        let (name, text) = read(&Input::File(path.clone()), stdin)?;
        let parsed = documents::parse(&name, &text)?;
        accounts.add_documents(&parsed, &accounts::Origin::File(name), namespace)?;
    }
    let workloads = workloads::find(&input, namespace)?;
    let selection = selection::Selection {
        webhook: if args.all {
            None
        } else {
            Some(webhook_config(args.webhook_config.as_deref(), stdin)?)
        },
        namespaces: namespaces::NamespaceLabels::from_documents(&input)?,
    };
    if args.from_cluster {
        let wanted = workloads
            .iter()
            .filter(|w| selection.check(w).is_ok())
            .map(|w| (w.namespace.clone(), w.service_account.clone()));
        accounts.fetch_missing(wanted).await?;
    }
    let rbac = rbac::Rbac::from_documents(&input, namespace)?;
    let context = process::Context {
        settings: &settings,
        accounts: &accounts,
        rbac: &rbac,
        selection: &selection,
    };
    let processed = process::process(&context, input, workloads)?;
    if args.explain {
        return Ok(Printed {
            stdout: explain::render(selection.webhook.as_ref(), &processed.reports),
            warnings: Vec::new(),
        });
    }
    let mut warnings = Vec::new();
    if let Some(webhook) = selection.webhook.as_ref() {
        if webhook.match_conditions > 0 {
            warnings.push(explain::unevaluated_conditions(webhook));
        }
    }
    for report in &processed.reports {
        let workload = report.workload.describe();
        match &report.finding {
            // The cluster would create it as it is, without credentials: worth a word when the pod
            // asked for the webhook.
            process::Finding::NotSent(not_sent) if not_sent.opted_in() => warnings.push(format!(
                "{}: {workload}: not injected: {not_sent}, so the API server does not call the \
                 webhook for it and it starts without Azure credentials",
                report.location
            )),
            process::Finding::NotSent(_) => {}
            process::Finding::NoServiceAccount { namespace, name } => {
                return Err(InjectError::MissingServiceAccount {
                    location: report.location.clone(),
                    workload,
                    namespace: namespace.clone(),
                    name: name.clone(),
                    where_else: if args.from_cluster {
                        ", the --service-account files or the cluster"
                    } else {
                        " or the --service-account files (--from-cluster reads the cluster)"
                    },
                })
            }
            process::Finding::Denied(denial) => {
                return Err(InjectError::Rejected {
                    location: report.location.clone(),
                    workload,
                    reason: denial.reason.as_str(),
                    message: denial.message.clone(),
                })
            }
            process::Finding::Injected(injection) => warnings.extend(
                injection
                    .warnings
                    .iter()
                    .map(|w| format!("{}: {workload}: {w}", report.location)),
            ),
        }
    }
    Ok(Printed {
        stdout: output::render(args.output, &processed)?,
        warnings,
    })
}

/// The webhook entry that decides which pods reach the webhook: from `--webhook-config`, else the
/// shipped one.
fn webhook_config(
    path: Option<&std::path::Path>,
    stdin: &mut dyn Read,
) -> Result<webhook_config::WebhookConfig, InjectError> {
    let Some(path) = path else {
        return webhook_config::WebhookConfig::shipped()
            .map_err(|message| InjectError::Internal { message });
    };
    let (name, text) = read(&Input::File(path.to_owned()), stdin)?;
    let documents = documents::parse(&name, &text)?;
    webhook_config::WebhookConfig::from_documents(&documents, Some(name.clone())).map_err(
        |message| InjectError::WebhookConfig {
            path: name,
            message,
        },
    )
}

fn read(source: &Input, stdin: &mut dyn Read) -> Result<(String, String), InjectError> {
    let (name, text) = match source {
        Input::Stdin => {
            let mut text = String::new();
            let read = stdin.read_to_string(&mut text).map(|_| text);
            ("stdin".to_owned(), read)
        }
        Input::File(path) => (path.display().to_string(), std::fs::read_to_string(path)),
    };
    match text {
        Ok(text) => Ok((name, text)),
        Err(e) => Err(InjectError::Read {
            path: name,
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests;
