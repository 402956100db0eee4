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
    [("AZURE_TENANT_ID", "11111111-2222-3333-4444-555555555555")].into()
}

/// `(exit status, stdout, stderr)`.
fn run_with(input: &str, extra: &[&str]) -> (u8, String, String) {
    run_in(&env(), input, extra)
}

fn run_in(env: &BTreeMap<&str, &str>, input: &str, extra: &[&str]) -> (u8, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = run(&args(extra), env, &mut input.as_bytes(), &mut out, &mut err);
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

const IDENTITY_BINDING_POD: &str = "\
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: demo, annotations: {azure.workload.identity/client-id: cid}}
---
apiVersion: v1
kind: Pod
metadata:
  name: ib
  namespace: demo
  labels: {azure.workload.identity/use: \"true\"}
  annotations: {azure.workload.identity/use-identity-binding: \"true\"}
spec:
  serviceAccountName: app
  containers: [{name: c, image: i}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: use-cid}
rules: [{apiGroups: [cid.wi.aks.azure.com], resources: [cid], verbs: [use-managed-identity]}]
";

fn identity_binding_env() -> BTreeMap<&'static str, &'static str> {
    let mut env = env();
    env.insert("AZURE_KUBERNETES_TOKEN_PROXY", "https://proxy.example.com");
    env.insert("AZURE_KUBERNETES_SNI_NAME", "proxy.example.com");
    env.insert("AZURE_KUBERNETES_CA_CONFIGMAP_NAME", "kube-root-ca.crt");
    env
}

#[test]
fn explain_names_the_cluster_role_binding_that_grants() {
    let input = IDENTITY_BINDING_POD.to_owned()
        + "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n\
           metadata: {name: app-uses-cid}\nroleRef: {kind: ClusterRole, name: use-cid}\n\
           subjects: [{kind: ServiceAccount, name: app, namespace: demo}]\n";
    let (status, out, _) = run_in(&identity_binding_env(), &input, &["--explain"]);
    assert_eq!(status, 0);
    assert!(
        out.contains(
            "identity binding: yes; RBAC: cid granted by ClusterRoleBinding app-uses-cid\n"
        ),
        "{out}"
    );
    assert!(!out.contains("warning:"), "{out}");
}

#[test]
fn a_role_binding_is_reported_as_namespaced_only() {
    let input = IDENTITY_BINDING_POD.to_owned()
        + "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n\
           metadata: {name: app-uses-cid, namespace: demo}\nroleRef: {kind: ClusterRole, name: use-cid}\n\
           subjects: [{kind: ServiceAccount, name: app}]\n";
    let (status, _, err) = run_in(&identity_binding_env(), &input, &[]);
    assert_eq!(status, 0);
    assert!(
        err.contains(
            "Pod demo/ib: RoleBinding demo/app-uses-cid binds service account demo/app to \
             use-managed-identity on cid only inside namespace demo; the webhook's check is \
             cluster-scoped: bind ClusterRole use-cid with a ClusterRoleBinding\n"
        ),
        "{err}"
    );
    assert!(
        err.contains(
            "the webhook (with its default --rbac-check=deny, unless the cluster already grants \
             it) would reject the pod: service account demo/app may not use managed identity cid"
        ),
        "{err}"
    );
}

#[test]
fn the_deprecated_service_account_field_names_the_account() {
    let input = INPUT.replace("serviceAccountName: app", "serviceAccount: app");
    let (status, out, err) = run_with(&input, &["--explain"]);
    assert_eq!(status, 0, "{err}");
    assert!(
        out.contains("service account: demo/app (from the input)"),
        "{out}"
    );
    assert!(out.contains("client id: cid;"), "{out}");
}

#[test]
fn error_locations_keep_a_tilde_in_a_key() {
    // `~1` in a key must not come back as `/`: the pointer must escape `~` before `/`.
    let input = "\
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: demo, annotations: {example.com/a~1b: 1}}
";
    let (status, _, err) = run_with(input, &[]);
    assert_ne!(status, 0);
    assert!(
        err.contains("metadata.annotations.example.com/a~1b: expected a string"),
        "{err}"
    );
}

const SYSTEM_POD: &str = "\
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: kube-system, annotations: {azure.workload.identity/client-id: cid}}
---
apiVersion: v1
kind: Pod
metadata:
  name: system
  namespace: kube-system
  labels: {azure.workload.identity/use: \"true\"}
spec:
  serviceAccountName: app
  containers: [{name: c, image: i}]
";

/// The shipped configuration never sends a kube-system pod: `inject` reports and prints it as the
/// cluster would create it (it used to say `injected: yes` and inject it).
#[test]
fn a_labelled_pod_in_an_excluded_namespace_is_not_injected() {
    let (status, out, _) = run_with(SYSTEM_POD, &["--explain"]);
    assert_eq!(status, 0);
    assert!(
        out.contains(
            "Pod kube-system/system\n  not injected: namespace kube-system is not selected by the \
             webhook configuration's namespaceSelector"
        ),
        "{out}"
    );
    let (status, patch, err) = run_with(SYSTEM_POD, &["-o", "patch"]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(patch, "[]\n", "nothing changed");
    assert!(
        err.contains("Pod kube-system/system: not injected: namespace kube-system"),
        "{err}"
    );
}

#[test]
fn all_applies_no_webhook_configuration() {
    let (status, out, _) = run_with(SYSTEM_POD, &["--explain", "--all"]);
    assert_eq!(status, 0);
    assert!(
        out.starts_with("webhook configuration: not applied (--all)\n"),
        "{out}"
    );
    assert!(
        out.contains("Pod kube-system/system\n  injected: yes"),
        "{out}"
    );
}

#[test]
fn namespace_labels_come_from_the_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("webhook.yaml");
    std::fs::write(
        &config,
        "apiVersion: admissionregistration.k8s.io/v1\nkind: MutatingWebhookConfiguration\n\
         metadata: {name: only-labelled-namespaces}\nwebhooks:\n- name: any.example.com\n  \
         rules: [{operations: [CREATE], apiGroups: [''], apiVersions: [v1], resources: [pods]}]\n  \
         namespaceSelector: {matchExpressions: [{key: wi, operator: Exists}]}\n",
    )
    .expect("write");
    let config = config.to_str().expect("utf-8");
    let labelled =
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system, labels: {wi: x}}\n";
    let input = format!("{SYSTEM_POD}---\n{labelled}");
    let (status, out, err) = run_with(&input, &["--explain", "--webhook-config", config]);
    assert_eq!(status, 0, "{err}");
    assert!(
        out.contains("Pod kube-system/system\n  injected: yes"),
        "{out}"
    );
    let (status, out, err) = run_with(SYSTEM_POD, &["--explain", "--webhook-config", config]);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("(it requires wi)"), "{out}");
}
