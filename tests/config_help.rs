//! `--help` teaches: every subcommand's help lists the environment variables the code reads and
//! has examples. The variables are observed, not copied: the configuration code is run with an
//! environment that records every name asked for, and each must be listed in `config::env`'s
//! table and in the binary's `--help` output.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::process::Command as Process;

use azwi_webhook::config::env::{self, EnvSource, Reader};
use azwi_webhook::config::{load_serve, parse_go_style, Command};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";

/// A pod the webhook injects, with its service account, for `inject` to read.
const DEMO: &str = r#"
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: ns, annotations: {azure.workload.identity/client-id: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"}}
---
apiVersion: v1
kind: Pod
metadata:
  name: app
  namespace: ns
  labels: {azure.workload.identity/use: "true"}
spec:
  serviceAccountName: app
  containers: [{name: app, image: app}]
"#;

/// The names `run` asks its environment for. Only the tenant is set (a valid one), so no
/// validation stops early and every optional variable, fallbacks included, is read.
fn names_read(run: impl FnOnce(&dyn EnvSource)) -> BTreeSet<String> {
    let read = RefCell::new(BTreeSet::new());
    let recording = |name: &str| {
        read.borrow_mut().insert(name.to_owned());
        (name == env::AZURE_TENANT_ID).then(|| TENANT.to_owned())
    };
    run(&recording);
    read.into_inner()
}

fn command(argv: &[&str]) -> Command {
    parse_go_style(argv)
        .expect("valid command line")
        .into_command()
}

fn help(subcommand: &str) -> String {
    let output = Process::new(env!("CARGO_BIN_EXE_azwi-webhook"))
        .args([subcommand, "--help"])
        .env_clear()
        .output()
        .expect("runs");
    assert!(output.status.success(), "{subcommand} --help: {output:?}");
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Every name in `read` is in the table for `reader` and on a line of its own in `help`.
fn assert_listed(reader: Reader, read: &BTreeSet<String>, help: &str) {
    let table: BTreeSet<&str> = env::read_by(reader).map(|v| v.name).collect();
    for name in read {
        assert!(
            table.contains(name.as_str()),
            "{reader:?} reads {name}, which config::env::VARIABLES does not list for it"
        );
    }
    for name in table {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{name} "))),
            "{reader:?} --help does not list {name}:\n{help}"
        );
    }
    assert!(help.contains("\nEnvironment:\n"), "{help}");
    assert!(help.contains("\nExamples:\n"), "{help}");
}

#[test]
fn serve_help_lists_every_variable_serve_reads() {
    let Command::Serve(args) = command(&["azwi-webhook", "serve"]) else {
        panic!("not serve");
    };
    let read = names_read(|env| {
        load_serve(&args, env).expect("valid configuration");
    });
    // Read outside `EnvSource`: by logging and by the Kubernetes client.
    let mut expected = read.clone();
    expected.insert(azwi_webhook::logging::ENV_FILTER_VAR.to_owned());
    expected.insert(env::KUBECONFIG.to_owned());
    assert!(
        read.contains(env::AZURE_KUBERNETES_TOKEN_ENDPOINT),
        "{read:?}"
    );
    assert!(read.contains(env::POD_NAMESPACE), "{read:?}");
    assert_listed(Reader::Serve, &expected, &help("serve"));
    // No subcommand means serve: the top-level help lists the same variables.
    assert_listed(Reader::Serve, &expected, &help("--help"));
}

#[test]
fn inject_help_lists_every_variable_inject_reads() {
    let Command::Inject(args) = command(&["azwi-webhook", "inject", "-f", "-"]) else {
        panic!("not inject");
    };
    let read = names_read(|env| {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status =
            azwi_webhook::inject::run(&args, env, &mut DEMO.as_bytes(), &mut out, &mut err);
        assert_eq!(status, 0, "{}", String::from_utf8_lossy(&err));
    });
    assert!(
        read.contains(env::AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR),
        "{read:?}"
    );
    // --from-cluster builds its client from KUBECONFIG.
    let mut expected = read;
    expected.insert(env::KUBECONFIG.to_owned());
    assert_listed(Reader::Inject, &expected, &help("inject"));
}

#[test]
fn certs_help_lists_the_namespace_it_reads() {
    let Command::Certs(args) = command(&["azwi-webhook", "certs", "--out", "x"]) else {
        panic!("not certs");
    };
    let read = names_read(|env| {
        args.dns_names(env).expect("default DNS name");
    });
    assert_eq!(read, BTreeSet::from([env::POD_NAMESPACE.to_owned()]));
    assert_listed(Reader::Certs, &read, &help("certs"));
}

#[test]
fn version_help_has_an_example() {
    assert!(help("version").contains("\nExamples:\n  azwi-webhook version"));
}
