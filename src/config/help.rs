//! The text `--help` shows after the flags: the environment variables a subcommand reads (from
//! [`env::VARIABLES`], so help and code cannot drift apart) and worked examples, as kubectl does.

use std::fmt::Write;

use super::env::{self, Reader};

const SERVE_EXAMPLES: &str =
    "  # In a pod, as the manifests run it: settings from the azure-wi-webhook-config ConfigMap,
  # certificates managed by the webhook in its Secret
  azwi-webhook serve --log-level=info

  # On a workstation against a cluster, with certificates made by `azwi-webhook certs`
  azwi-webhook certs --out ./certs/out --dns-name localhost
  AZURE_TENANT_ID=<tenant-guid> azwi-webhook serve --disable-cert-rotation \\
    --webhook-cert-dir ./certs/out --kubeconfig ~/.kube/config --log-level=info";

const INJECT_EXAMPLES: &str =
    "  # What the webhook does to the demo pods (the settings of the demo's webhook.env)
  (set -a; . manifests/examples/webhook.env; azwi-webhook inject -f manifests/examples/demo.yaml)

  # Per pod and pod template: what is injected, or why not
  AZURE_TENANT_ID=<tenant-guid> azwi-webhook inject -f app.yaml --explain

  # Which pods an installed webhook configuration sends to the webhook (its namespace and object
  # selectors); pods it does not select are printed unchanged
  kubectl get mutatingwebhookconfiguration azure-wi-webhook-mutating-webhook-configuration -o yaml > mwc.yaml
  azwi-webhook inject -f app.yaml --webhook-config mwc.yaml --explain

  # Settings from the webhook's ConfigMap, service accounts from the cluster, output as JSON patches
  azwi-webhook inject -f app.yaml --config-map config.yaml --from-cluster -o patch

  # From standard input
  kubectl kustomize overlays/prod | azwi-webhook inject -f - --config-map config.yaml";

const CERTS_EXAMPLES: &str = "\
  # A new CA and a serving certificate for the webhook Service in POD_NAMESPACE
  # (default azure-workload-identity-system); prints the caBundle
  azwi-webhook certs --out certs/out

  # A webhook reached by name and by IP address (e.g. run outside the cluster)
  azwi-webhook certs --out certs/out --dns-name localhost --ip 127.0.0.1 --ip ::1

  # Renew the serving certificate with the CA the API server already trusts
  # (its caBundle stays valid; --force replaces tls.crt and tls.key)
  azwi-webhook certs --out certs/out --ca-cert certs/out/ca.crt --ca-key certs/out/ca.key --force";

const CERTS_FILES: &str = "
Files: ca.crt, ca.key (new CA only), tls.crt, tls.key; keys are mode 0600.
Exit status: 0 written; 2 bad arguments or files in the way (nothing written); 1 generating
or writing failed.";

const VERSION_EXAMPLES: &str = "  azwi-webhook version";

/// `after_help` of `azwi-webhook` itself, which runs `serve` when no subcommand is given.
pub fn top_level() -> String {
    let mut text = environment(Reader::Serve);
    text.push_str("\nExamples:\n");
    for examples in [SERVE_EXAMPLES, INJECT_EXAMPLES, CERTS_EXAMPLES] {
        text.push_str(examples);
        text.push_str("\n\n");
    }
    text.push_str(VERSION_EXAMPLES);
    text
}

pub fn serve() -> String {
    with_examples(environment(Reader::Serve), SERVE_EXAMPLES)
}

pub fn inject() -> String {
    with_examples(environment(Reader::Inject), INJECT_EXAMPLES)
}

pub fn certs() -> String {
    let mut text = with_examples(environment(Reader::Certs), CERTS_EXAMPLES);
    text.push('\n');
    text.push_str(CERTS_FILES);
    text
}

pub fn version() -> String {
    with_examples(String::new(), VERSION_EXAMPLES)
}

fn with_examples(mut text: String, examples: &str) -> String {
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str("Examples:\n");
    text.push_str(examples);
    text
}

/// "Environment:" and one aligned line per variable `reader` reads; empty when it reads none.
fn environment(reader: Reader) -> String {
    let vars: Vec<_> = env::read_by(reader).collect();
    let Some(width) = vars.iter().map(|v| v.name.len()).max() else {
        return String::new();
    };
    let mut text = String::from("Environment:\n");
    for var in vars {
        // Writing to a String cannot fail.
        let _ = writeln!(text, "  {:width$}  {}", var.name, var.help);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variable_is_listed_once_for_its_readers_only() {
        let serve = serve();
        let certs = certs();
        for var in env::VARIABLES {
            let line = format!("  {} ", var.name);
            assert_eq!(
                serve.matches(&line).count(),
                usize::from(var.readers.contains(&Reader::Serve)),
                "{}",
                var.name
            );
            assert_eq!(
                certs.matches(&line).count(),
                usize::from(var.readers.contains(&Reader::Certs)),
                "{}",
                var.name
            );
        }
        assert!(version().starts_with("Examples:\n"));
    }
}
