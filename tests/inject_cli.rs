//! The binary's `inject` wiring: the shipped example, with the example settings, through the real
//! command line.

use std::path::Path;
use std::process::Command;

fn example_env() -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/examples/webhook.env");
    std::fs::read_to_string(path)
        .expect("webhook.env")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn injects_the_shipped_demo_with_the_example_settings() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new(env!("CARGO_BIN_EXE_azwi-webhook"))
        .args(["inject", "-f"])
        .arg(root.join("manifests/examples/demo.yaml"))
        .args(["--explain", "-f"])
        .arg(root.join("manifests/examples/rbac.yaml"))
        .env_clear()
        .envs(example_env())
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("Pod demo/demo-workload-identity\n  injected: yes"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "identity binding: yes; RBAC: aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee granted by \
             ClusterRoleBinding demo-use-managed-identity"
        ),
        "{stdout}"
    );
}

#[test]
fn bad_input_exits_non_zero_and_prints_nothing() {
    let output = Command::new(env!("CARGO_BIN_EXE_azwi-webhook"))
        .args(["inject", "-f", "/nonexistent/manifests.yaml"])
        .env_clear()
        .env("AZURE_TENANT_ID", "11111111-2222-3333-4444-555555555555")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr)
        .starts_with("azwi-webhook inject: cannot read /nonexistent/manifests.yaml:"));
}
