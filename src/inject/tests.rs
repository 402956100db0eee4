use super::*;
use crate::config::{parse_go_style, Command};
use std::collections::BTreeMap;

fn args(extra: &[&str]) -> InjectArgs {
    let argv = ["azwi-webhook", "inject", "-f", "-"].iter().chain(extra);
    match parse_go_style(argv)
        .expect("valid command line")
        .into_command()
    {
        Command::Inject(args) => args,
        other => panic!("not inject: {other:?}"),
    }
}

fn env() -> BTreeMap<&'static str, &'static str> {
    [("AZURE_TENANT_ID", "tenant")].into()
}

/// `(exit status, stdout, stderr)`.
fn run_with(input: &str, extra: &[&str]) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = run(
        &args(extra),
        &env(),
        &mut input.as_bytes(),
        &mut out,
        &mut err,
    );
    let text = |b: Vec<u8>| String::from_utf8(b).expect("utf-8");
    (status, text(out), text(err))
}

const INPUT: &str = "\
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: demo, annotations: {azure.workload.identity/client-id: cid}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  template:
    metadata:
      labels: {azure.workload.identity/use: \"true\"}
    spec:
      serviceAccountName: app
      containers: [{name: c, image: i}]
";

#[test]
fn injecting_the_output_again_changes_nothing() {
    let (status, first, _) = run_with(INPUT, &[]);
    assert_eq!(status, 0);
    let (status, second, _) = run_with(&first, &["-o", "patch"]);
    assert_eq!(status, 0);
    assert_eq!(second, "[]\n", "the webhook's second pass is a no-op");
    let (_, again, _) = run_with(&first, &[]);
    assert_eq!(again, first);
}

#[test]
fn a_template_gets_a_volume_named_after_the_workload() {
    let (_, out, _) = run_with(INPUT, &["-o", "json"]);
    let expected = crate::mutate::derived_volume_name("web- (prefix)");
    assert!(out.contains(&expected), "{out}");
}

#[test]
fn configuration_errors_exit_with_the_config_status() {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let empty: BTreeMap<&str, &str> = BTreeMap::new();
    let status = run(
        &args(&[]),
        &empty,
        &mut INPUT.as_bytes(),
        &mut out,
        &mut err,
    );
    assert_eq!(i32::from(status), crate::config::EXIT_CODE);
    assert!(out.is_empty());
    assert!(String::from_utf8_lossy(&err).contains("AZURE_TENANT_ID"));
}
