//! `azwi-webhook certs`: the subcommand, with its output and exit status. Errors are one line on stderr:
//! status 2 when the command line must change (bad names, unusable `--ca-cert`/`--ca-key`, files in the
//! way without `--force`), 1 when generating or writing failed.

use std::io::Write;
use std::time::SystemTime;

use super::dev_certs::{write_dev_certs, DevCerts};
use super::existing_ca;
use super::generate::ServingNames;
use crate::config::{CertsArgs, EnvSource, EXIT_CODE};

/// Runs `certs`: the caBundle (base64) on stdout, what was written on stderr. Returns the exit status.
pub fn run(
    args: &CertsArgs,
    env: &dyn EnvSource,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> u8 {
    let usage_error = EXIT_CODE as u8;
    let dns = match args.dns_names(env) {
        Ok(dns) => dns,
        Err(e) => {
            let _ = writeln!(stderr, "azwi-webhook: {e}");
            return usage_error;
        }
    };
    let now = SystemTime::now();
    let ca = match (&args.ca_cert, &args.ca_key) {
        (Some(cert), Some(key)) => match existing_ca::load(cert, key, now) {
            Ok(ca) => Some(ca),
            Err(e) => {
                let _ = writeln!(stderr, "azwi-webhook certs: {e}");
                return usage_error;
            }
        },
        // clap requires both or neither.
        _ => None,
    };
    let signed_by = match &ca {
        Some(ca) => format!("the CA in {}", ca.cert_path.display()),
        None => "a new CA".to_owned(),
    };
    let names = ServingNames {
        dns,
        ips: args.ips.clone(),
    };
    let listed: Vec<String> = names
        .dns
        .iter()
        .cloned()
        .chain(names.ips.iter().map(ToString::to_string))
        .collect();
    let request = DevCerts {
        out: &args.out,
        names,
        ca,
        force: args.force,
    };
    match write_dev_certs(request, now) {
        Ok(written) => {
            let files: Vec<String> = written
                .files
                .iter()
                .filter_map(|p| p.file_name())
                .map(|f| f.to_string_lossy().into_owned())
                .collect();
            let _ = writeln!(
                stderr,
                "wrote {} to {} (serving certificate for {}, signed by {signed_by}); caBundle:",
                files.join(", "),
                args.out.display(),
                listed.join(", "),
            );
            let _ = writeln!(stdout, "{}", written.ca_bundle);
            0
        }
        Err(e) => {
            let _ = writeln!(stderr, "azwi-webhook certs: {e}");
            e.exit_code()
        }
    }
}
