//! Which pods the API server would send to the webhook at all: the MutatingWebhookConfiguration's
//! rules (pods, CREATE), `namespaceSelector` and `objectSelector`, for the webhook entry this project
//! installs. A pod the configuration does not select is created by the cluster as it is, so
//! `inject` leaves it as it is too.
//!
//! By default the configuration the project ships (`manifests/base`, rendered from the chart and
//! checked against it in CI) is compiled in, so it cannot drift from what is installed;
//! `--webhook-config FILE` reads another (an installed one, from `kubectl get -o yaml`).

use std::fmt;

use serde_json::Value;

use super::documents::{self, Document};
use super::label_selector::{LabelSelector, Labels};

/// The shipped configuration.
const SHIPPED: &str = include_str!("../../manifests/base/mutating-webhook-configuration.yaml");
const SHIPPED_SOURCE: &str = "manifests/base/mutating-webhook-configuration.yaml";

/// The name of the webhook entry this project installs (upstream's).
pub const WEBHOOK_NAME: &str = "mutation.azure-workload-identity.io";

/// One webhook entry of a MutatingWebhookConfiguration, as far as pod selection goes.
#[derive(Debug)]
pub struct WebhookConfig {
    /// `metadata.name` of the configuration.
    pub configuration: String,
    /// The webhook entry's name.
    pub webhook: String,
    /// Where it was read: the file, or `None` for the shipped one.
    pub file: Option<String>,
    /// CEL `matchConditions` cannot be evaluated offline; how many the entry has.
    pub match_conditions: usize,
    rules_cover_pod_create: bool,
    namespace_selector: LabelSelector,
    object_selector: LabelSelector,
}

/// Why the API server would not call the webhook for a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotSent {
    /// No rule covers CREATE of v1 pods.
    Rules { opted_in: bool },
    Namespace {
        namespace: String,
        /// The first requirement of the `namespaceSelector` the namespace fails.
        unmet: String,
        opted_in: bool,
    },
    /// The first requirement of the `objectSelector` the pod's labels fail.
    Object { unmet: String },
}

impl NotSent {
    /// The pod's labels match the `objectSelector`: it asked for the webhook and will not get it.
    pub fn opted_in(&self) -> bool {
        match self {
            NotSent::Rules { opted_in } | NotSent::Namespace { opted_in, .. } => *opted_in,
            NotSent::Object { .. } => false,
        }
    }
}

impl fmt::Display for NotSent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotSent::Rules { .. } => f.write_str(
                "the webhook configuration's rules do not cover CREATE of v1 pods",
            ),
            NotSent::Namespace {
                namespace, unmet, ..
            } => write!(
                f,
                "namespace {namespace} is not selected by the webhook configuration's namespaceSelector \
                 (it requires {unmet})"
            ),
            NotSent::Object { unmet } => write!(
                f,
                "its labels do not match the webhook configuration's objectSelector (it requires \
                 {unmet})"
            ),
        }
    }
}

impl WebhookConfig {
    /// The configuration the project ships.
    pub fn shipped() -> Result<Self, String> {
        let documents = documents::parse(SHIPPED_SOURCE, SHIPPED).map_err(|e| e.to_string())?;
        Self::from_documents(&documents, None)
    }

    /// The webhook entry of the MutatingWebhookConfiguration(s) in `documents` (read from `file`):
    /// the one named [`WEBHOOK_NAME`], or the only one there is.
    pub fn from_documents(documents: &[Document], file: Option<String>) -> Result<Self, String> {
        let mut entries: Vec<(String, &Value)> = Vec::new();
        for document in documents {
            let mut objects = Vec::new();
            documents::objects(&document.value, "", &mut objects);
            for (_, object) in objects {
                if documents::group_kind(object)
                    != (
                        "admissionregistration.k8s.io",
                        "MutatingWebhookConfiguration",
                    )
                {
                    continue;
                }
                let name = documents::meta_str(object, "name").unwrap_or_default();
                let webhooks = object.get("webhooks").and_then(Value::as_array);
                entries.extend(webhooks.into_iter().flatten().map(|w| (name.to_owned(), w)));
            }
        }
        let entry_name = |w: &Value| w.get("name").and_then(Value::as_str).map(str::to_owned);
        let named: Vec<&(String, &Value)> = entries
            .iter()
            .filter(|(_, w)| entry_name(w).as_deref() == Some(WEBHOOK_NAME))
            .collect();
        let (configuration, webhook) = match (named.as_slice(), entries.as_slice()) {
            ([one], _) => (one.0.clone(), one.1),
            ([], [one]) => (one.0.clone(), one.1),
            ([], []) => {
                return Err("no MutatingWebhookConfiguration with a webhook in it".to_owned())
            }
            ([], _) => {
                let names: Vec<String> = entries
                    .iter()
                    .map(|(_, w)| entry_name(w).unwrap_or_default())
                    .collect();
                return Err(format!(
                    "several webhooks ({}) and none named {WEBHOOK_NAME}: keep only the one to apply",
                    names.join(", ")
                ));
            }
            (_, _) => {
                return Err(format!(
                    "{} webhooks named {WEBHOOK_NAME}: keep only the one to apply",
                    named.len()
                ))
            }
        };
        let webhook_name = entry_name(webhook).unwrap_or_default();
        let field = |name: &str| format!("webhook {webhook_name}: {name}");
        let selector = |name: &str| {
            LabelSelector::parse(webhook.get(name)).map_err(|e| format!("{}: {e}", field(name)))
        };
        let match_conditions = match webhook.get("matchConditions") {
            None | Some(Value::Null) => 0,
            Some(Value::Array(conditions)) => conditions.len(),
            Some(_) => return Err(format!("{}: expected a list", field("matchConditions"))),
        };
        Ok(Self {
            rules_cover_pod_create: rules_cover_pod_create(webhook.get("rules"))
                .map_err(|e| format!("{}{e}", field("rules")))?,
            namespace_selector: selector("namespaceSelector")?,
            object_selector: selector("objectSelector")?,
            configuration,
            webhook: webhook_name,
            file,
            match_conditions,
        })
    }

    /// `Ok` when the API server would call the webhook for a pod with `pod_labels` created in a
    /// namespace with `namespace_labels`. Checked in the API server's order: rules, namespace,
    /// object.
    pub fn sends(
        &self,
        namespace: &str,
        namespace_labels: &Labels,
        pod_labels: &Labels,
    ) -> Result<(), NotSent> {
        let unmet_object = self.object_selector.unmet(pod_labels);
        let opted_in = unmet_object.is_none();
        if !self.rules_cover_pod_create {
            return Err(NotSent::Rules { opted_in });
        }
        if let Some(unmet) = self.namespace_selector.unmet(namespace_labels) {
            return Err(NotSent::Namespace {
                namespace: namespace.to_owned(),
                unmet: unmet.to_string(),
                opted_in,
            });
        }
        match unmet_object {
            Some(unmet) => Err(NotSent::Object {
                unmet: unmet.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// `azure-wi-webhook-mutating-webhook-configuration, webhook mutation.azure-workload-identity.io
    /// (as shipped)`, for `--explain`.
    pub fn describe(&self) -> String {
        let origin = match &self.file {
            Some(file) => format!("from {file}"),
            None => format!("as shipped in {SHIPPED_SOURCE}; --webhook-config reads another"),
        };
        format!(
            "{}, webhook {} ({origin})",
            self.configuration, self.webhook
        )
    }
}

/// Whether a rule matches CREATE of `v1` `pods` in the core group, namespaced, as the API server
/// matches rules (`*` for any; `*/*` also covers subresources, `pods/*` only those). An error is the
/// place (`[i].field`) and what is wrong.
fn rules_cover_pod_create(rules: Option<&Value>) -> Result<bool, String> {
    let rules = match rules {
        None | Some(Value::Null) => return Ok(false),
        Some(Value::Array(rules)) => rules,
        Some(_) => return Err(": expected a list".to_owned()),
    };
    for (i, rule) in rules.iter().enumerate() {
        let has = |field: &str, wanted: &[&str]| -> Result<bool, String> {
            match rule.get(field) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Array(items)) => {
                    let mut found = false;
                    for item in items {
                        let Some(item) = item.as_str() else {
                            return Err(format!("[{i}].{field}: expected a list of strings"));
                        };
                        found |= wanted.contains(&item);
                    }
                    Ok(found)
                }
                Some(_) => Err(format!("[{i}].{field}: expected a list of strings")),
            }
        };
        let scope = match rule.get("scope") {
            None | Some(Value::Null) => "*",
            Some(Value::String(scope)) => scope.as_str(),
            Some(_) => return Err(format!("[{i}].scope: expected a string")),
        };
        let covered = has("operations", &["CREATE", "*"])?
            && has("apiGroups", &["", "*"])?
            && has("apiVersions", &["v1", "*"])?
            && has("resources", &["pods", "*", "*/*"])?
            && matches!(scope, "*" | "Namespaced");
        if covered {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inject::label_selector::labels;

    fn namespace(name: &str) -> Labels {
        labels(&[("kubernetes.io/metadata.name", name)])
    }

    fn config(yaml: &str) -> Result<WebhookConfig, String> {
        let documents = documents::parse("file.yaml", yaml).map_err(|e| e.to_string())?;
        WebhookConfig::from_documents(&documents, Some("file.yaml".into()))
    }

    const OPTED_IN: &[(&str, &str)] = &[("azure.workload.identity/use", "true")];

    #[test]
    fn the_shipped_configuration_excludes_the_system_namespaces_and_unlabelled_pods() {
        let shipped = WebhookConfig::shipped().expect("the shipped configuration loads");
        assert_eq!(shipped.webhook, WEBHOOK_NAME);
        assert_eq!(
            shipped.configuration,
            "azure-wi-webhook-mutating-webhook-configuration"
        );
        assert_eq!(
            shipped.sends("apps", &namespace("apps"), &labels(OPTED_IN)),
            Ok(())
        );
        for excluded in ["kube-system", "azure-workload-identity-system"] {
            let verdict = shipped.sends(excluded, &namespace(excluded), &labels(OPTED_IN));
            assert!(
                matches!(&verdict, Err(NotSent::Namespace { opted_in: true, unmet, .. })
                    if unmet == "kubernetes.io/metadata.name notin (azure-workload-identity-system,kube-system)"),
                "{excluded}: {verdict:?}"
            );
        }
        assert_eq!(
            shipped.sends("apps", &namespace("apps"), &labels(&[])),
            Err(NotSent::Object {
                unmet: "azure.workload.identity/use=true".into()
            })
        );
    }

    const TWO_WEBHOOKS: &str = "\
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: mine}
webhooks:
  - name: other.example.com
    rules: [{operations: [UPDATE], apiGroups: [''], apiVersions: [v1], resources: [pods]}]
  - name: mutation.azure-workload-identity.io
    rules: [{operations: ['*'], apiGroups: ['*'], apiVersions: ['*'], resources: ['*/*']}]
    namespaceSelector:
      matchLabels: {team: a}
";

    #[test]
    fn a_file_with_several_webhooks_gives_the_projects_entry() {
        let config = config(TWO_WEBHOOKS).expect("valid");
        assert_eq!(
            (config.configuration.as_str(), config.webhook.as_str()),
            ("mine", WEBHOOK_NAME)
        );
        // No objectSelector: every pod of a selected namespace.
        let team_a = labels(&[("team", "a")]);
        assert_eq!(config.sends("x", &team_a, &labels(&[])), Ok(()));
        assert_eq!(
            config.sends("y", &namespace("y"), &labels(OPTED_IN)),
            Err(NotSent::Namespace {
                namespace: "y".into(),
                unmet: "team=a".into(),
                opted_in: true
            })
        );
    }

    #[test]
    fn rules_that_do_not_cover_pod_create_send_nothing() {
        let only_update =
            TWO_WEBHOOKS.replace("name: mutation.azure-workload-identity.io", "name: x");
        let only_update = only_update.replace("'*/*'", "deployments");
        let error = config(&only_update).expect_err("two entries, neither ours");
        assert!(
            error.contains("several webhooks (other.example.com, x)"),
            "{error}"
        );
        let single = "\
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: mine}
webhooks:
  - name: renamed.example.com
    rules: [{operations: [CREATE], apiGroups: [''], apiVersions: [v1], resources: [pods/*]}]
";
        let config = config(single).expect("the only entry is used");
        assert_eq!(
            config.sends("x", &namespace("x"), &labels(&[])),
            Err(NotSent::Rules { opted_in: true })
        );
    }

    #[test]
    fn a_file_without_a_webhook_configuration_or_with_a_bad_selector_is_refused() {
        let error =
            config("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n").expect_err("none");
        assert!(error.contains("no MutatingWebhookConfiguration"), "{error}");
        let bad = TWO_WEBHOOKS.replace(
            "matchLabels: {team: a}",
            "matchExpressions: [{key: k, operator: In}]",
        );
        let error = config(&bad).expect_err("In needs values");
        assert!(
            error.contains("webhook mutation.azure-workload-identity.io: namespaceSelector: matchExpressions[0]: operator In needs values"),
            "{error}"
        );
    }
}
