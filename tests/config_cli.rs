//! Command-line parsing: subcommands, defaults, Go-style flags and clap's usage errors.

use std::path::PathBuf;

use azwi_webhook::config::{parse_go_style, Cli, Command, Input, ServeArgs, EXIT_CODE};
use clap::error::ErrorKind;
use clap::Parser;

fn command(args: &[&str]) -> Command {
    match parse_go_style(args.iter().copied()) {
        Ok(cli) => cli.into_command(),
        Err(e) => panic!("{args:?} should parse: {e}"),
    }
}

fn serve(args: &[&str]) -> ServeArgs {
    match command(args) {
        Command::Serve(s) => *s,
        other => panic!("{args:?} should be serve, got {other:?}"),
    }
}

fn error_kind(args: &[&str]) -> ErrorKind {
    match parse_go_style(args.iter().copied()) {
        Ok(cli) => panic!("{args:?} should fail, got {cli:?}"),
        Err(e) => {
            assert_eq!(e.exit_code(), EXIT_CODE, "{args:?}: usage errors exit 2");
            e.kind()
        }
    }
}

#[test]
fn no_subcommand_is_serve_with_documented_defaults() {
    let s = serve(&["azwi-webhook"]);
    assert_eq!(s.webhook_addr, ":9443");
    assert_eq!(s.webhook_cert_dir, PathBuf::from("/certs"));
    assert!(!s.disable_cert_rotation);
    assert_eq!(s.tls_min_version, "1.3");
    assert_eq!(s.client_ca_file, None);
    assert_eq!(s.health_addr, ":9440");
    assert_eq!(s.metrics_addr, ":8095");
    assert_eq!(s.metrics_backend, "prometheus");
    assert_eq!(s.shutdown_delay, "5s");
    assert_eq!(s.shutdown_drain_timeout, "15s");
    assert_eq!(s.termination_grace_period, None);
    assert_eq!(s.rbac_check, "deny");
    assert_eq!(s.mutation.log_level, "");
    assert_eq!(s.mutation.audience, "api://AzureADTokenExchange");
    assert_eq!(
        s.mutation.custom_token_endpoint_annotation_suffix,
        "identity-binding"
    );
    assert_eq!(
        s.mutation.custom_token_endpoint_audience,
        "api://AKSIdentityBinding"
    );
}

#[test]
fn upstream_style_invocation_without_subcommand_works() {
    let s = serve(&[
        "azwi-webhook",
        "--log-level=info",
        "--metrics-addr",
        ":9000",
    ]);
    assert_eq!(s.mutation.log_level, "info");
    assert_eq!(s.metrics_addr, ":9000");
}

#[test]
fn serve_subcommand_takes_every_flag() {
    let s = serve(&[
        "azwi-webhook",
        "serve",
        "--webhook-addr=127.0.0.1:0",
        "--webhook-cert-dir",
        "/tmp/c",
        "--disable-cert-rotation",
        "--tls-min-version=1.2",
        "--client-ca-file=/ca.pem",
        "--health-addr=:1",
        "--metrics-addr=:2",
        "--metrics-backend=Prometheus",
        "--log-level=debug",
        "--audience=aud",
        "--custom-token-endpoint-annotation-suffix=",
        "--custom-token-endpoint-audience=",
        "--shutdown-delay=500ms",
        "--shutdown-drain-timeout=20s",
        "--termination-grace-period=1m",
        "--rbac-check=warn",
    ]);
    assert_eq!(s.webhook_addr, "127.0.0.1:0");
    assert_eq!(s.webhook_cert_dir, PathBuf::from("/tmp/c"));
    assert!(s.disable_cert_rotation);
    assert_eq!(s.tls_min_version, "1.2");
    assert_eq!(s.client_ca_file, Some(PathBuf::from("/ca.pem")));
    assert_eq!(s.mutation.audience, "aud");
    assert_eq!(s.mutation.custom_token_endpoint_annotation_suffix, "");
    assert_eq!(s.mutation.custom_token_endpoint_audience, "");
    assert_eq!(s.shutdown_delay, "500ms");
    assert_eq!(s.shutdown_drain_timeout, "20s");
    assert_eq!(s.termination_grace_period.as_deref(), Some("1m"));
    assert_eq!(s.rbac_check, "warn");
}

#[test]
fn disable_cert_rotation_accepts_go_bool_forms() {
    let cases = [
        (vec!["--disable-cert-rotation"], true),
        (vec!["--disable-cert-rotation=true"], true),
        (vec!["--disable-cert-rotation=false"], false),
        (vec![], false),
    ];
    for (flags, want) in cases {
        let mut args = vec!["azwi-webhook"];
        args.extend(flags.iter().copied());
        assert_eq!(serve(&args).disable_cert_rotation, want, "{flags:?}");
    }
    // A following word is not taken as its value (it is a stray argument, refused).
    error_kind(&["azwi-webhook", "--disable-cert-rotation", "true"]);
}

#[test]
fn go_style_single_dash_flags_are_accepted() {
    let s = serve(&[
        "azwi-webhook",
        "-log-level=info",
        "-disable-cert-rotation",
        "-webhook-cert-dir",
        "/x",
    ]);
    assert_eq!(s.mutation.log_level, "info");
    assert!(s.disable_cert_rotation);
    assert_eq!(s.webhook_cert_dir, PathBuf::from("/x"));
}

#[test]
fn top_level_flags_conflict_with_a_subcommand() {
    // Otherwise `--audience x serve` would silently drop `--audience`.
    assert_eq!(
        error_kind(&["azwi-webhook", "--audience=x", "serve"]),
        ErrorKind::ArgumentConflict
    );
}

#[test]
fn inject_reads_files_and_stdin_with_mutation_flags() {
    let Command::Inject(args) = command(&[
        "azwi-webhook",
        "inject",
        "-f",
        "a.yaml",
        "--filename=-",
        "-f",
        "b.json",
        "--audience",
        "aud",
        "--custom-token-endpoint-annotation-suffix",
        "ib",
    ]) else {
        panic!("inject");
    };
    assert_eq!(
        args.inputs(),
        [
            Input::File("a.yaml".into()),
            Input::Stdin,
            Input::File("b.json".into())
        ]
    );
    assert_eq!(args.mutation.audience, "aud");
    assert_eq!(args.mutation.custom_token_endpoint_annotation_suffix, "ib");
    assert_eq!(
        args.mutation.custom_token_endpoint_audience,
        "api://AKSIdentityBinding"
    );
}

#[test]
fn inject_needs_a_file_and_refuses_serve_flags() {
    assert_eq!(
        error_kind(&["azwi-webhook", "inject"]),
        ErrorKind::MissingRequiredArgument
    );
    assert_eq!(
        error_kind(&["azwi-webhook", "inject", "-f", "-", "--webhook-addr=:1"]),
        ErrorKind::UnknownArgument
    );
}

/// `--explain` prints text only: an explicit `-o` with it is a usage error naming both (it used to
/// be ignored silently), and so is `--webhook-config` with `--all`, which applies no configuration.
/// The default `-o yaml` does not count.
#[test]
fn inject_refuses_contradictory_flags() {
    let cases: [(&[&str], [&str; 2]); 4] = [
        (&["--explain", "-o", "yaml"], ["--explain", "--output"]),
        (&["-o=json", "--explain"], ["--explain", "--output"]),
        (
            &["--explain", "--output", "patch"],
            ["--explain", "--output"],
        ),
        (
            &["--all", "--webhook-config", "c.yaml"],
            ["--webhook-config", "--all"],
        ),
    ];
    for (flags, names) in cases {
        let argv: Vec<&str> = ["azwi-webhook", "inject", "-f", "-"]
            .iter()
            .chain(flags)
            .copied()
            .collect();
        let error = match parse_go_style(argv.iter().copied()) {
            Ok(cli) => panic!("{flags:?} should fail, got {cli:?}"),
            Err(error) => error,
        };
        assert_eq!(error.kind(), ErrorKind::ArgumentConflict, "{flags:?}");
        assert_eq!(error.exit_code(), EXIT_CODE, "{flags:?}");
        let message = error.to_string();
        for name in names {
            assert!(
                message.contains(name),
                "{flags:?}: {message} does not name {name}"
            );
        }
    }
    assert!(matches!(
        command(&["azwi-webhook", "inject", "-f", "-", "--explain"]),
        Command::Inject(_)
    ));
}

#[test]
fn certs_takes_out_dir_and_repeatable_dns_names() {
    let Command::Certs(args) = command(&[
        "azwi-webhook",
        "certs",
        "--out",
        "/tmp/o",
        "--dns-name",
        "a.svc",
        "--dns-name=b.svc",
    ]) else {
        panic!("certs");
    };
    assert_eq!(args.out, PathBuf::from("/tmp/o"));
    assert_eq!(args.dns_names, ["a.svc", "b.svc"]);
    assert_eq!(
        error_kind(&["azwi-webhook", "certs"]),
        ErrorKind::MissingRequiredArgument
    );
}

#[test]
fn version_subcommand_and_flag() {
    assert!(matches!(
        command(&["azwi-webhook", "version"]),
        Command::Version
    ));
    let err = Cli::try_parse_from(["azwi-webhook", "--version"]).err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::DisplayVersion));
}

#[test]
fn unknown_flags_are_usage_errors() {
    assert_eq!(
        error_kind(&["azwi-webhook", "--kubeconfigg=x"]),
        ErrorKind::UnknownArgument
    );
}

#[test]
fn empty_paths_are_usage_errors() {
    for flag in ["--webhook-cert-dir=", "--client-ca-file="] {
        assert_eq!(
            error_kind(&["azwi-webhook", flag]),
            ErrorKind::InvalidValue,
            "{flag}"
        );
    }
}

#[test]
fn clap_definition_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
