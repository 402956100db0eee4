//! The `azwi-webhook` binary: parse the command line, then hand over to the library.

use std::io::Read;
use std::process::ExitCode;

use azwi_webhook::config::{self, Command, ConfigError, Input, ProcessEnv};

fn main() -> ExitCode {
    let cli = config::parse_go_style(std::env::args_os()).unwrap_or_else(|e| e.exit());
    match cli.into_command() {
        Command::Serve(args) => match config::load_serve(&args, &ProcessEnv) {
            Ok((serve, settings)) => azwi_webhook::app::run(serve, settings),
            Err(e) => config_failure(&e),
        },
        Command::Inject(args) => {
            let settings = match config::build_settings(&args.mutation, &ProcessEnv) {
                Ok(settings) => settings,
                Err(e) => return config_failure(&e),
            };
            let mut input = String::new();
            for source in args.inputs() {
                let read = match &source {
                    Input::Stdin => std::io::stdin().read_to_string(&mut input).map(|_| ()),
                    Input::File(path) => {
                        std::fs::read_to_string(path).map(|text| input.push_str(&text))
                    }
                };
                if let Err(e) = read {
                    eprintln!("azwi-webhook inject: cannot read {source:?}: {e}");
                    return ExitCode::FAILURE;
                }
                if !input.ends_with('\n') {
                    input.push('\n');
                }
                input.push_str("---\n");
            }
            match azwi_webhook::inject::inject(&settings, &input) {
                Ok(out) => {
                    for warning in &out.warnings {
                        eprintln!("Warning: {warning}");
                    }
                    print!("{}", out.yaml);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("azwi-webhook inject: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Certs(args) => {
            let dns = match args.dns_names(&ProcessEnv) {
                Ok(dns) => dns,
                Err(e) => return config_failure(&e),
            };
            match azwi_webhook::certs::write_dev_certs(&args.out, &dns) {
                Ok(ca_bundle) => {
                    eprintln!(
                        "wrote ca.crt, tls.crt and tls.key to {}; caBundle:",
                        args.out.display()
                    );
                    println!("{ca_bundle}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("azwi-webhook certs: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Version => {
            println!("azwi-webhook {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

fn config_failure(error: &ConfigError) -> ExitCode {
    eprintln!("azwi-webhook: {error}");
    ExitCode::from(error.exit_code() as u8)
}
