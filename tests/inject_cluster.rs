//! `inject --from-cluster` against the fake API server, through a kubeconfig written at test time.
//! One test function only: it points the process-wide `KUBECONFIG` at the fake, which no other test in
//! this binary may race with.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;

use std::collections::BTreeMap;

use azwi_webhook::config::{parse_go_style, Command, InjectArgs};
use azwi_webhook::inject;
use fake_apiserver::{Endpoint, FakeApiServer};

const POD: &str = "\
apiVersion: v1
kind: ServiceAccount
metadata: {name: local, namespace: demo, annotations: {azure.workload.identity/client-id: from-input}}
---
apiVersion: v1
kind: Pod
metadata: {name: a, namespace: demo, labels: {azure.workload.identity/use: \"true\"}}
spec: {serviceAccountName: remote, containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, namespace: demo, labels: {azure.workload.identity/use: \"true\"}}
spec: {serviceAccountName: local, containers: [{name: c}]}
---
apiVersion: v1
kind: Pod
metadata: {name: unlabelled, namespace: demo}
spec: {serviceAccountName: not-asked-for, containers: [{name: c}]}
---
# Labelled, but in a namespace the shipped webhook configuration excludes: never sent, never asked.
apiVersion: v1
kind: Pod
metadata: {name: system, namespace: kube-system, labels: {azure.workload.identity/use: \"true\"}}
spec: {serviceAccountName: not-asked-for, containers: [{name: c}]}
";

fn args(extra: &[&str]) -> InjectArgs {
    let argv = ["azwi-webhook", "inject", "-f", "-", "--from-cluster"]
        .iter()
        .chain(extra);
    match parse_go_style(argv).expect("valid").into_command() {
        Command::Inject(args) => args,
        _ => panic!("not inject"),
    }
}

async fn run(input: &str, extra: &[&str]) -> (u8, String, String) {
    let env: BTreeMap<&str, &str> =
        [("AZURE_TENANT_ID", "11111111-2222-3333-4444-555555555555")].into();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = inject::run_async(
        &args(extra),
        &env,
        &mut input.as_bytes(),
        &mut out,
        &mut err,
    )
    .await;
    let text = |b: Vec<u8>| String::from_utf8(b).expect("utf-8");
    (status, text(out), text(err))
}

fn kubeconfig(server: &FakeApiServer) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(server.ca_pem().expect("TLS fake"));
    format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    \
         server: {}\n    certificate-authority-data: {ca}\ncontexts:\n- name: fake\n  context:\n    \
         cluster: fake\n    user: fake\nusers:\n- name: fake\n  user:\n    token: test-token\n",
        server.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_cluster_reads_only_missing_service_accounts_of_selected_pods() {
    let server = FakeApiServer::start().await;
    server.add_service_account(
        "demo",
        "remote",
        &[("azure.workload.identity/client-id", "from-cluster")],
    );
    server.add_service_account(
        "demo",
        "local",
        &[("azure.workload.identity/client-id", "cluster-copy-loses")],
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig(&server)).expect("write kubeconfig");
    // Safe here: this binary's only test, so nothing else reads the environment concurrently.
    std::env::set_var("KUBECONFIG", &path);

    let (status, out, err) = run(POD, &["--explain"]).await;
    assert_eq!(status, 0, "{err}");
    assert!(
        out.contains("service account: demo/remote (from the cluster)")
            && out.contains("client id: from-cluster;"),
        "{out}"
    );
    assert!(
        out.contains("service account: demo/local (from the input)")
            && out.contains("client id: from-input;"),
        "the input wins: {out}"
    );
    let gets: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.endpoint == Endpoint::GetServiceAccount)
        .map(|r| r.path)
        .collect();
    assert_eq!(
        gets,
        ["/api/v1/namespaces/demo/serviceaccounts/remote"],
        "one GET, for the account the input lacks"
    );
    let metadata_only = server.requests().iter().all(|r| {
        r.accept
            .as_deref()
            .is_some_and(|a| a.contains("PartialObjectMetadata"))
    });
    assert!(metadata_only, "metadata-only GETs");

    // An account that exists nowhere is still an error, naming the cluster too.
    let missing = POD.replace("serviceAccountName: remote", "serviceAccountName: gone");
    let (status, out, err) = run(&missing, &[]).await;
    assert_eq!(status, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("service account demo/gone not found in the input, the --service-account files or the cluster"),
        "{err}"
    );

    // An unreachable API server is an error, not a guess.
    server.set_outage(fake_apiserver::Outage::Refuse).await;
    let (status, out, err) = run(POD, &[]).await;
    assert_eq!(status, 1);
    assert!(out.is_empty());
    assert!(
        err.contains("azwi-webhook inject: cluster: reading service account demo/remote"),
        "{err}"
    );
}
