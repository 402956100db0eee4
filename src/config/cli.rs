//! Command-line definitions (clap derive).
//!
//! Values are kept as the strings the user typed and checked afterwards by `values`, `mutation` and `serve`,
//! so every rule and message lives in one tested place and is identical for `serve` and `inject`.
//! Paths are `PathBuf`, for which clap itself refuses an empty value (a usage error, exit status 2).
//! Flags have no environment-variable fallback: upstream had none, and the environment is reserved for the
//! documented `AZURE_*` / `PROXY_*` / `POD_NAMESPACE` variables.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::mutate::settings::{DEFAULT_AUDIENCE, DEFAULT_IDENTITY_BINDING_AUDIENCE};

/// `--webhook-cert-dir` when not given (upstream's, where its Deployment mounts the Secret).
pub const DEFAULT_WEBHOOK_CERT_DIR: &str = "/certs";

/// `azwi-webhook`: with no subcommand it behaves as `azwi-webhook serve`, so upstream-style invocations
/// such as `azwi-webhook --log-level=info` keep working.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "azwi-webhook",
    version,
    about = "Mutating admission webhook that gives pods an Azure identity (Azure Workload Identity compatible)",
    args_conflicts_with_subcommands = true,
    after_help = super::help::top_level()
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Serve flags given without a subcommand.
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl Cli {
    /// The command to run: the subcommand, or `serve` with the top-level flags when none was given.
    pub fn into_command(self) -> Command {
        self.command
            .unwrap_or_else(|| Command::Serve(Box::new(self.serve)))
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the admission webhook (the default when no subcommand is given).
    #[command(after_help = super::help::serve())]
    Serve(Box<ServeArgs>),
    /// Apply the webhook's mutation to manifests offline and print the result.
    #[command(after_help = super::help::inject())]
    Inject(InjectArgs),
    /// Generate a CA and a serving certificate for manual or development installs.
    #[command(after_help = super::help::certs())]
    Certs(CertsArgs),
    /// Print the version, git commit and build date, and exit.
    #[command(after_help = super::help::version())]
    Version,
}

/// Flags that shape the mutation itself; shared by `serve` and `inject` so both build their `Settings`
/// with the same code.
#[derive(Debug, Clone, Args)]
pub struct MutationArgs {
    /// Token audience for workload-identity pods; empty means the default.
    #[arg(long, value_name = "AUDIENCE", default_value = DEFAULT_AUDIENCE)]
    pub audience: String,

    /// Identity binding is switched on per pod by the annotation `azure.workload.identity/use-<SUFFIX>`.
    /// Set this and --custom-token-endpoint-audience both to "" to turn identity binding off.
    #[arg(long, value_name = "SUFFIX", default_value = "identity-binding")]
    pub custom_token_endpoint_annotation_suffix: String,

    /// Token audience for identity-binding pods; must differ from --audience.
    #[arg(long, value_name = "AUDIENCE", default_value = DEFAULT_IDENTITY_BINDING_AUDIENCE)]
    pub custom_token_endpoint_audience: String,

    /// Log verbosity: info, debug, trace or all (unset: warnings and errors). Also passed to the proxy
    /// sidecar.
    #[arg(
        long,
        value_name = "LEVEL",
        default_value = "",
        hide_default_value = true
    )]
    pub log_level: String,
}

/// Flags of `serve` (also accepted without a subcommand).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TLS admission listener (`:PORT` listens on every interface).
    #[arg(long, value_name = "ADDR", default_value = ":9443")]
    pub webhook_addr: String,

    /// With --disable-cert-rotation: the directory holding tls.crt and tls.key (checked at startup,
    /// reloaded when they change). Not read otherwise: self-managed certificates are served from the
    /// Secret.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_WEBHOOK_CERT_DIR)]
    pub webhook_cert_dir: PathBuf,

    /// Do not manage the serving certificates; they must be provided in --webhook-cert-dir.
    /// Accepts `--disable-cert-rotation` or `--disable-cert-rotation=true|false`.
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_value = "false",
        default_missing_value = "true",
        value_parser = BoolishValueParser::new(),
        action = ArgAction::Set
    )]
    pub disable_cert_rotation: bool,

    /// Minimum TLS version: 1.2 or 1.3.
    #[arg(long, value_name = "VERSION", default_value = "1.3")]
    pub tls_min_version: String,

    /// Require client certificates signed by this CA (PEM) on the admission listener.
    #[arg(long, value_name = "FILE")]
    pub client_ca_file: Option<PathBuf>,

    /// Plain-HTTP listener for /healthz and /readyz.
    #[arg(long, value_name = "ADDR", default_value = ":9440")]
    pub health_addr: String,

    /// Plain-HTTP listener for /metrics.
    #[arg(long, value_name = "ADDR", default_value = ":8095")]
    pub metrics_addr: String,

    /// Metrics backend; only prometheus is supported.
    #[arg(long, value_name = "BACKEND", default_value = "prometheus")]
    pub metrics_backend: String,

    /// After SIGTERM, keep serving this long (with readiness failing) before draining, e.g. 5s, 500ms, 1m.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub shutdown_delay: String,

    /// After the shutdown delay, wait at most this long for in-flight requests, then cut the
    /// connections left and exit.
    #[arg(long, value_name = "DURATION", default_value = "15s")]
    pub shutdown_drain_timeout: String,

    /// The pod's terminationGracePeriodSeconds (e.g. 30s). When set, serve refuses to start if
    /// --shutdown-delay + --shutdown-drain-timeout cannot end (2s margin to exit) within it.
    #[arg(long, value_name = "DURATION")]
    pub termination_grace_period: Option<String>,

    /// Identity-binding RBAC check: deny (reject unauthorised pods), warn (admit with a warning) or off.
    #[arg(long, value_name = "MODE", default_value = "deny")]
    pub rbac_check: String,

    /// Upstream's Arc-cluster switch of releases before v1.0: accepted so old Deployments still start,
    /// ignored with a warning (this webhook has no Arc-specific behaviour).
    #[arg(
        long,
        hide = true,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new()
    )]
    pub arc_cluster: Option<bool>,

    /// Kubernetes client configuration file (as upstream's --kubeconfig). Unset: KUBECONFIG,
    /// ~/.kube/config, else the in-cluster configuration.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Reviews handled at once; beyond this the webhook answers 429 at once instead of queueing.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_in_flight_reviews: u32,

    #[command(flatten)]
    pub mutation: MutationArgs,
}

/// Flags of `inject`.
#[derive(Debug, Clone, Args)]
pub struct InjectArgs {
    /// Manifest to read (YAML or JSON, may hold several documents); `-` reads standard input. Repeatable.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true)]
    pub filenames: Vec<PathBuf>,

    /// More service accounts (YAML or JSON; other kinds in the file are ignored). Repeatable. Accounts in
    /// the input win over these.
    #[arg(long = "service-account", value_name = "FILE")]
    pub service_accounts: Vec<PathBuf>,

    /// Read service accounts found in neither the input nor --service-account files from the cluster
    /// (KUBECONFIG, ~/.kube/config or in-cluster configuration).
    #[arg(long)]
    pub from_cluster: bool,

    /// Take the webhook's environment from this azure-wi-webhook-config ConfigMap manifest; its keys win
    /// over the process environment, which still supplies keys the ConfigMap lacks.
    #[arg(long, value_name = "FILE")]
    pub config_map: Option<PathBuf>,

    /// Inject every pod and pod template, as if the webhook configuration selected them all (its
    /// rules, namespaceSelector and objectSelector are not applied).
    #[arg(long)]
    pub all: bool,

    /// The MutatingWebhookConfiguration (YAML or JSON, e.g. from `kubectl get
    /// mutatingwebhookconfiguration NAME -o yaml`) whose rules and namespace and object selectors
    /// decide which pods reach the webhook; its entry named mutation.azure-workload-identity.io, or
    /// its only one. Default: the configuration this project ships. Pods it does not select are
    /// printed unchanged, as a cluster would create them.
    #[arg(long, value_name = "FILE", conflicts_with = "all")]
    pub webhook_config: Option<PathBuf>,

    /// Namespace of objects that name none.
    #[arg(short = 'n', long, value_name = "NAMESPACE", default_value = "default")]
    pub namespace: String,

    /// Output format: the manifests as YAML or JSON, or the JSON patch of each changed object.
    #[arg(short = 'o', long, value_name = "FORMAT", value_enum, default_value_t = OutputFormat::Yaml)]
    pub output: OutputFormat,

    /// Instead of the manifests, print for each pod and pod template what would be injected, or why
    /// not (plain text; not combinable with -o).
    #[arg(long, conflicts_with = "output")]
    pub explain: bool,

    #[command(flatten)]
    pub mutation: MutationArgs,
}

/// What `inject` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Yaml,
    Json,
    Patch,
}

/// One input of `inject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl InjectArgs {
    /// The inputs in command-line order, with `-` meaning standard input.
    pub fn inputs(&self) -> Vec<Input> {
        self.filenames
            .iter()
            .map(|f| {
                if f.as_os_str() == "-" {
                    Input::Stdin
                } else {
                    Input::File(f.clone())
                }
            })
            .collect()
    }
}

/// Flags of `certs`.
#[derive(Debug, Clone, Args)]
pub struct CertsArgs {
    /// Directory to write ca.crt, ca.key, tls.crt and tls.key into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// DNS name for the serving certificate. Repeatable; the first is also the common name. Default:
    /// azure-wi-webhook-webhook-service.<POD_NAMESPACE>.svc
    #[arg(long = "dns-name", value_name = "NAME")]
    pub dns_names: Vec<String>,

    /// IP address for the serving certificate (an iPAddress entry). Repeatable.
    #[arg(long = "ip", value_name = "IP")]
    pub ips: Vec<IpAddr>,

    /// Sign with this existing CA certificate (PEM) instead of a new CA, so the caBundle the API server
    /// trusts stays valid. Needs --ca-key.
    #[arg(long, value_name = "FILE", requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,

    /// The PKCS#8 private key of --ca-cert.
    #[arg(long, value_name = "FILE", requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,

    /// Overwrite files that already exist in --out (refused otherwise, and nothing is written).
    #[arg(long)]
    pub force: bool,
}
