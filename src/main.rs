//! The `azwi-webhook` binary: parse the command line, then hand over to the library.

use std::process::ExitCode;

use azwi_webhook::config::{self, Command, ConfigError, ProcessEnv};

#[global_allocator]
static ALLOCATOR: azwi_webhook::heap::Allocator = azwi_webhook::heap::Allocator;

fn main() -> ExitCode {
    azwi_webhook::heap::disable_transparent_huge_pages();
    let cli = config::parse_go_style(std::env::args_os()).unwrap_or_else(|e| e.exit());
    match cli.into_command() {
        Command::Serve(args) => match config::load_serve(&args, &ProcessEnv) {
            Ok((serve, settings)) => azwi_webhook::app::run(serve, settings),
            Err(e) => config_failure(&e),
        },
        Command::Inject(args) => ExitCode::from(azwi_webhook::inject::run(
            &args,
            &ProcessEnv,
            &mut std::io::stdin().lock(),
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )),
        Command::Certs(args) => ExitCode::from(azwi_webhook::certs::cli::run(
            &args,
            &ProcessEnv,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )),
        Command::Version => {
            print!("{}", azwi_webhook::build_info::version_text());
            ExitCode::SUCCESS
        }
    }
}

fn config_failure(error: &ConfigError) -> ExitCode {
    eprintln!("azwi-webhook: {error}");
    ExitCode::from(error.exit_code() as u8)
}
