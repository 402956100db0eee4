//! Configuration: command line (clap) and environment, validated once at startup into typed values.
//!
//! Typical use in `main`:
//! ```no_run
//! use azwi_webhook::config::{self, Command, ProcessEnv};
//! let cli = config::parse_go_style(std::env::args_os()).unwrap_or_else(|e| e.exit());
//! match cli.into_command() {
//!     Command::Serve(args) => match config::load_serve(&args, &ProcessEnv) {
//!         Ok((_serve, _settings)) => { /* run the server */ }
//!         Err(e) => {
//!             eprintln!("azwi-webhook: {e}");
//!             std::process::exit(e.exit_code());
//!         }
//!     },
//!     _ => { /* inject, certs, version */ }
//! }
//! ```
//! A bad configuration is a [`ConfigError`]: one line naming the flag or variable, exit status [`EXIT_CODE`]
//! (the status clap uses for usage errors).

mod argv;
mod cli;
pub mod env;
mod error;
mod guid;
mod help;
mod mutation;
mod names;
mod quantity;
mod resources;
mod selector;
mod serve;
mod shutdown;
mod values;

pub use argv::{normalize_go_style_flags, parse_go_style};
pub use cli::{
    CertsArgs, Cli, Command, InjectArgs, Input, MutationArgs, OutputFormat, ServeArgs,
    DEFAULT_WEBHOOK_CERT_DIR,
};
pub use env::{EnvSource, ProcessEnv};
pub use error::{ConfigError, EXIT_CODE};
pub use mutation::{build_settings, DEFAULT_PROXY_IMAGE, DEFAULT_PROXY_INIT_IMAGE};
pub use selector::parse_label_selector;
pub use serve::{load_serve, ServeConfig, SERVICE_NAME};
pub use shutdown::{ShutdownTiming, SHUTDOWN_EXIT_MARGIN};
pub use values::{ipv4_fallback, LogLevel, TlsMinVersion};
