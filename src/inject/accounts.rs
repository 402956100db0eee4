//! Service accounts for offline injection: from the input, from `--service-account` files, and from
//! the cluster (`--from-cluster`), in that order of precedence. The input wins because it is what is
//! about to be applied.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::documents::{self, invalid, meta_str, Document};
use super::InjectError;
use crate::k8s::client::{infer_client, ClientOptions};
use crate::k8s::errors::error_chain;
use crate::k8s::live::LiveServiceAccounts;
use crate::k8s::service_accounts::LookupError;
use crate::mutate::service_account::ServiceAccountMeta;

/// Where a service account was found, for `--explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Input,
    File(String),
    Cluster,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Input => f.write_str("from the input"),
            Origin::File(path) => write!(f, "from {path}"),
            Origin::Cluster => f.write_str("from the cluster"),
        }
    }
}

/// Known service accounts by `(namespace, name)`.
#[derive(Debug, Default)]
pub struct Accounts {
    known: BTreeMap<(String, String), (ServiceAccountMeta, Origin)>,
}

impl Accounts {
    pub fn get(&self, namespace: &str, name: &str) -> Option<&(ServiceAccountMeta, Origin)> {
        self.known.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// Adds the ServiceAccounts of `documents` (lists included); accounts already known are kept.
    pub fn add_documents(
        &mut self,
        documents: &[Document],
        origin: &Origin,
        default_namespace: &str,
    ) -> Result<(), InjectError> {
        for document in documents {
            let mut objects = Vec::new();
            documents::objects(&document.value, "", &mut objects);
            for (pointer, object) in objects {
                if documents::group_kind(object) != ("", "ServiceAccount") {
                    continue;
                }
                let meta = account(document, &pointer, object, default_namespace)?;
                self.known
                    .entry((meta.namespace.clone(), meta.name.clone()))
                    .or_insert_with(|| (meta, origin.clone()));
            }
        }
        Ok(())
    }

    /// Reads the accounts in `wanted` that are still unknown from the cluster (kubeconfig or
    /// in-cluster configuration). One that does not exist stays unknown; any other failure is an error,
    /// because guessing would print manifests the webhook would not produce.
    pub async fn fetch_missing(
        &mut self,
        wanted: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), InjectError> {
        let missing: Vec<(String, String)> = wanted
            .into_iter()
            .filter(|key| !self.known.contains_key(key))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let client = infer_client(&ClientOptions::for_requests())
            .await
            .map_err(|e| InjectError::Cluster {
                message: error_chain(&e),
            })?;
        let live = LiveServiceAccounts::new(client);
        for (namespace, name) in missing {
            match live.fetch(&namespace, &name).await {
                Ok(meta) => {
                    self.known
                        .insert((namespace, name), (meta, Origin::Cluster));
                }
                Err(LookupError::NotFound { .. }) => {}
                Err(e @ LookupError::Unavailable { .. }) => {
                    return Err(InjectError::Cluster {
                        message: e.to_string(),
                    })
                }
            }
        }
        Ok(())
    }
}

fn account(
    document: &Document,
    pointer: &str,
    object: &Value,
    default_namespace: &str,
) -> Result<ServiceAccountMeta, InjectError> {
    let Some(name) = meta_str(object, "name") else {
        return Err(invalid(
            document,
            &format!("{pointer}/metadata/name"),
            "missing: a ServiceAccount needs a name".into(),
        ));
    };
    let mut annotations = BTreeMap::new();
    match object.pointer("/metadata/annotations") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (key, value) in map {
                let Some(value) = value.as_str() else {
                    return Err(invalid(
                        document,
                        &format!("{pointer}/metadata/annotations/{}", key.replace('/', "~1")),
                        format!("expected a string, found {}", documents::type_name(value)),
                    ));
                };
                annotations.insert(key.clone(), value.to_owned());
            }
        }
        Some(other) => {
            return Err(invalid(
                document,
                &format!("{pointer}/metadata/annotations"),
                format!("expected a mapping, found {}", documents::type_name(other)),
            ))
        }
    }
    Ok(ServiceAccountMeta {
        namespace: meta_str(object, "namespace")
            .unwrap_or(default_namespace)
            .to_owned(),
        name: name.to_owned(),
        annotations: annotations.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_wins_over_files() {
        let input = documents::parse(
            "in",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a, annotations: {k: input}}\n",
        )
        .expect("parses");
        let file = documents::parse(
            "sa.yaml",
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ServiceAccount\n  \
             metadata: {name: a, annotations: {k: file}}\n- apiVersion: v1\n  kind: ServiceAccount\n  \
             metadata: {name: b, namespace: other}\n",
        )
        .expect("parses");
        let mut accounts = Accounts::default();
        accounts
            .add_documents(&input, &Origin::Input, "default")
            .expect("adds");
        accounts
            .add_documents(&file, &Origin::File("sa.yaml".into()), "default")
            .expect("adds");
        let (a, origin) = accounts.get("default", "a").expect("known");
        assert_eq!(a.annotations.get("k"), Some("input"));
        assert_eq!(*origin, Origin::Input);
        let (_, origin) = accounts.get("other", "b").expect("known from the list");
        assert_eq!(origin.to_string(), "from sa.yaml");
    }

    #[test]
    fn a_non_string_annotation_is_named() {
        let input = documents::parse(
            "in",
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: a\n  annotations:\n    \
             azure.workload.identity/service-account-token-expiration: 3600\n",
        )
        .expect("parses");
        let error = Accounts::default()
            .add_documents(&input, &Origin::Input, "default")
            .expect_err("rejected");
        assert_eq!(
            error.to_string(),
            "in: document 1: metadata.annotations.azure.workload.identity/service-account-token-expiration: \
             expected a string, found a number"
        );
    }
}
