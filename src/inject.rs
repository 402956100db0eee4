//! `azwi-webhook inject`: the webhook's mutation applied offline to manifests, for GitOps pipelines
//! and for seeing what the webhook would do. Same core, same rules, no cluster.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::k8s::service_accounts::ServiceAccountMeta;
use crate::mutate::{self, names::USE_LABEL, patch, view::PodView};
use crate::settings::Settings;

/// Pods without a namespace are read as the API server would place them.
const DEFAULT_NAMESPACE: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error("document {index}: not valid YAML or JSON: {source}")]
    Parse {
        index: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("document {index}: pod {namespace}/{pod}: {message}")]
    Rejected {
        index: usize,
        namespace: String,
        pod: String,
        message: String,
    },
    #[error("document {index}: cannot write the result: {message}")]
    Output { index: usize, message: String },
}

/// The rewritten documents and the warnings the webhook would have returned.
#[derive(Debug, Default)]
pub struct Injected {
    pub yaml: String,
    pub warnings: Vec<String>,
}

/// Mutates every selected Pod of a multi-document YAML (or JSON) stream; other documents pass
/// through unchanged, in order. Service accounts are taken from the same input.
pub fn inject(settings: &Settings, input: &str) -> Result<Injected, InjectError> {
    let documents = parse_documents(input)?;
    let accounts = service_accounts(&documents);
    let mut out = Injected::default();
    for (index, mut document) in documents.into_iter().enumerate() {
        if is_selected_pod(&document) {
            out.warnings
                .extend(mutate_pod(settings, &accounts, index, &mut document)?);
        }
        let yaml = serde_yaml::to_string(&document).map_err(|e| InjectError::Output {
            index,
            message: e.to_string(),
        })?;
        if !out.yaml.is_empty() {
            out.yaml.push_str("---\n");
        }
        out.yaml.push_str(&yaml);
    }
    Ok(out)
}

fn parse_documents(input: &str) -> Result<Vec<Value>, InjectError> {
    let mut documents = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(input).enumerate() {
        let value =
            Value::deserialize(document).map_err(|source| InjectError::Parse { index, source })?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

fn kind_of(document: &Value) -> (&str, &str) {
    let api_version = document
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = document
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    (api_version, kind)
}

fn namespace_of(document: &Value) -> String {
    document
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_owned()
}

/// Selection exactly as the webhook configuration's objectSelector.
fn is_selected_pod(document: &Value) -> bool {
    kind_of(document) == ("v1", "Pod")
        && document
            .pointer("/metadata/labels")
            .and_then(|labels| labels.get(USE_LABEL))
            .and_then(Value::as_str)
            == Some("true")
}

fn service_accounts(documents: &[Value]) -> BTreeMap<(String, String), ServiceAccountMeta> {
    documents
        .iter()
        .filter(|d| kind_of(d) == ("v1", "ServiceAccount"))
        .filter_map(|d| {
            let name = d.pointer("/metadata/name")?.as_str()?.to_owned();
            let namespace = namespace_of(d);
            let annotations = d
                .pointer("/metadata/annotations")
                .and_then(Value::as_object)
                .map(|map| {
                    map.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            Some((
                (namespace.clone(), name.clone()),
                ServiceAccountMeta {
                    namespace,
                    name,
                    annotations,
                },
            ))
        })
        .collect()
}

fn mutate_pod(
    settings: &Settings,
    accounts: &BTreeMap<(String, String), ServiceAccountMeta>,
    index: usize,
    document: &mut Value,
) -> Result<Vec<String>, InjectError> {
    let namespace = namespace_of(document);
    let raw = document.to_string();
    let pod =
        PodView::from_json(&raw).map_err(|e| rejected(index, &namespace, "", e.to_string()))?;
    let pod_name = pod.display_name().to_owned();
    let sa_name = pod.service_account_name();
    let account = accounts
        .get(&(namespace.clone(), sa_name.to_owned()))
        .ok_or_else(|| {
            rejected(
                index,
                &namespace,
                &pod_name,
                format!("service account {namespace}/{sa_name} is not in the input"),
            )
        })?;
    let mutation = mutate::plan(settings, &pod, account)
        .map_err(|r| rejected(index, &namespace, &pod_name, r.message))?;
    let ops: json_patch::Patch = serde_json::from_slice(&patch::to_json(&mutation.ops))
        .map_err(|e| rejected(index, &namespace, &pod_name, e.to_string()))?;
    json_patch::patch(document, &ops)
        .map_err(|e| rejected(index, &namespace, &pod_name, e.to_string()))?;
    Ok(mutation
        .warnings
        .into_iter()
        .map(|w| format!("document {index}: pod {namespace}/{pod_name}: {w}"))
        .collect())
}

fn rejected(index: usize, namespace: &str, pod: &str, message: String) -> InjectError {
    InjectError::Rejected {
        index,
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ProxySettings;

    fn settings() -> Settings {
        Settings {
            audience: "api://AzureADTokenExchange".into(),
            tenant_id: "tenant".into(),
            authority_host: "https://login.microsoftonline.com/".into(),
            identity_binding: None,
            proxy: ProxySettings::default(),
            native_sidecars: false,
        }
    }

    const INPUT: &str = "\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: demo
  namespace: demo
  annotations:
    azure.workload.identity/client-id: client-1
---
apiVersion: v1
kind: Pod
metadata:
  name: selected
  namespace: demo
  labels:
    azure.workload.identity/use: \"true\"
spec:
  serviceAccountName: demo
  containers:
  - name: app
    image: app
---
apiVersion: v1
kind: Pod
metadata:
  name: unselected
  namespace: demo
spec:
  serviceAccountName: demo
  containers:
  - name: app
    image: app
";

    #[test]
    fn mutates_selected_pods_and_passes_the_rest_through_in_order() {
        let out = inject(&settings(), INPUT).expect("injects");
        let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&out.yaml)
            .map(|d| Value::deserialize(d).expect("yaml"))
            .collect();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0]["kind"], "ServiceAccount");
        assert_eq!(
            docs[1]["spec"]["containers"][0]["env"][0]["value"],
            "client-1"
        );
        assert_eq!(
            docs[1]["metadata"]["name"], "selected",
            "field order and content kept"
        );
        assert!(docs[2]["spec"]["containers"][0].get("env").is_none());
        assert!(out.warnings.is_empty());
    }

    #[test]
    fn a_missing_service_account_names_the_document() {
        let input = INPUT.replace(
            "serviceAccountName: demo\n  containers:\n  - name: app\n    image: app\n---",
            "serviceAccountName: other\n  containers:\n  - name: app\n    image: app\n---",
        );
        let error = inject(&settings(), &input).expect_err("fails");
        assert_eq!(
            error.to_string(),
            "document 1: pod demo/selected: service account demo/other is not in the input"
        );
    }

    #[test]
    fn bad_yaml_names_the_document() {
        let error = inject(&settings(), "kind: Pod\n---\n: : :\n  - [").expect_err("fails");
        assert!(error.to_string().starts_with("document 1:"), "{error}");
    }
}
