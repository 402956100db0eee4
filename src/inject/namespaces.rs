//! The labels a namespace has on the API server, which a webhook's `namespaceSelector` is matched
//! against: those of a Namespace object in the input, plus `kubernetes.io/metadata.name`, which the
//! API server sets on every namespace (and overwrites) — so a namespace the input does not hold
//! still has that one.

use std::collections::BTreeMap;

use serde_json::Value;

use super::documents::{self, invalid, meta_str, type_name, Document};
use super::label_selector::Labels;
use super::InjectError;
use crate::mutate::patch::escape_token;

/// The label the API server puts on every namespace, holding its name.
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

#[derive(Debug, Default)]
pub struct NamespaceLabels {
    from_input: BTreeMap<String, Labels>,
}

impl NamespaceLabels {
    /// The labels of every Namespace object in `documents` (also inside lists).
    pub fn from_documents(documents: &[Document]) -> Result<Self, InjectError> {
        let mut from_input = BTreeMap::new();
        for document in documents {
            let mut objects = Vec::new();
            documents::objects(&document.value, "", &mut objects);
            for (pointer, object) in objects {
                if documents::group_kind(object) != ("", "Namespace") {
                    continue;
                }
                let Some(name) = meta_str(object, "name") else {
                    return Err(invalid(
                        document,
                        &format!("{pointer}/metadata/name"),
                        "missing: a Namespace needs a name".into(),
                    ));
                };
                let labels = labels(document, object, &pointer)?;
                from_input.insert(name.to_owned(), labels);
            }
        }
        Ok(Self { from_input })
    }

    /// What the API server would match a `namespaceSelector` against for `namespace`.
    pub fn of(&self, namespace: &str) -> Labels {
        let mut labels = self.from_input.get(namespace).cloned().unwrap_or_default();
        labels.insert(NAME_LABEL.to_owned(), namespace.to_owned());
        labels
    }
}

fn labels(document: &Document, object: &Value, pointer: &str) -> Result<Labels, InjectError> {
    let at = format!("{pointer}/metadata/labels");
    let map = match object.pointer("/metadata/labels") {
        None | Some(Value::Null) => return Ok(Labels::new()),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(invalid(
                document,
                &at,
                format!("expected a mapping, found {}", type_name(other)),
            ))
        }
    };
    let mut labels = Labels::new();
    for (key, value) in map {
        let Value::String(value) = value else {
            return Err(invalid(
                document,
                &format!("{at}/{}", escape_token(key)),
                format!(
                    "expected a string, found {} (quote the value, e.g. \"true\")",
                    type_name(value)
                ),
            ));
        };
        labels.insert(key.clone(), value.clone());
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_labels_plus_the_name_label_the_api_server_sets() {
        let input = documents::parse(
            "in",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n  labels:\n    team: a\n    \
             kubernetes.io/metadata.name: spoofed\n",
        )
        .expect("parses");
        let namespaces = NamespaceLabels::from_documents(&input).expect("valid");
        let apps = namespaces.of("apps");
        assert_eq!(apps.get("team").map(String::as_str), Some("a"));
        assert_eq!(apps.get(NAME_LABEL).map(String::as_str), Some("apps"));
        let other = namespaces.of("kube-system");
        assert_eq!(other.len(), 1);
        assert_eq!(
            other.get(NAME_LABEL).map(String::as_str),
            Some("kube-system")
        );
    }

    #[test]
    fn a_label_that_is_not_a_string_is_named() {
        let input = documents::parse(
            "in",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: apps, labels: {frozen: true}}\n",
        )
        .expect("parses");
        let error = NamespaceLabels::from_documents(&input).expect_err("not a string");
        assert!(
            error
                .to_string()
                .starts_with("in: document 1: metadata.labels.frozen: expected a string"),
            "{error}"
        );
    }
}
