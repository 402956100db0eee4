//! Reading manifests: multi-document YAML, or a stream of JSON objects, from files or standard input.
//! Every document keeps its position (source and 1-based index) so errors can point at it.

use std::fmt;

use serde_json::Value;

use super::{yaml, InjectError};

/// Where a document came from: `manifests.yaml: document 3`. Counted from 1 and counting empty
/// documents too, so the number matches what the user sees between `---` separators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub source: String,
    pub index: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.source, self.index)
    }
}

/// One non-empty document: a mapping with `apiVersion` and `kind`.
#[derive(Debug, Clone)]
pub struct Document {
    pub location: Location,
    pub value: Value,
}

/// Parses every document of `text`. JSON input (first non-blank character `{`) is read as a stream of
/// objects, as `kubectl apply -f` accepts it; anything else as YAML, which also covers single JSON
/// documents.
pub fn parse(source: &str, text: &str) -> Result<Vec<Document>, InjectError> {
    let location = |index| Location {
        source: source.to_owned(),
        index,
    };
    let values = if text.trim_start().starts_with('{') {
        let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
        let mut values = Vec::new();
        for (i, value) in stream.enumerate() {
            let value = value.map_err(|e| InjectError::Syntax {
                location: location(i + 1),
                message: e.to_string(),
            })?;
            values.push((i + 1, value));
        }
        values
    } else {
        yaml::read_documents(text).map_err(|e| InjectError::Syntax {
            location: location(e.document),
            message: e.message,
        })?
    };
    let mut documents = Vec::with_capacity(values.len());
    for (index, value) in values {
        if value.is_null() {
            continue;
        }
        let document = Document {
            location: location(index),
            value,
        };
        check_object(&document, &document.value, "")?;
        documents.push(document);
    }
    Ok(documents)
}

/// A Kubernetes object is a mapping with string `apiVersion` and `kind`; lists are checked item by item.
fn check_object(document: &Document, value: &Value, pointer: &str) -> Result<(), InjectError> {
    if !value.is_object() {
        return Err(invalid(
            document,
            pointer,
            format!(
                "expected a Kubernetes object (a mapping), found {}",
                type_name(value)
            ),
        ));
    }
    for field in ["apiVersion", "kind"] {
        match value.get(field) {
            Some(Value::String(s)) if !s.is_empty() => {}
            Some(other) if !other.is_null() && !other.is_string() => {
                return Err(invalid(
                    document,
                    &format!("{pointer}/{field}"),
                    format!("expected a string, found {}", type_name(other)),
                ))
            }
            _ => {
                return Err(invalid(
                    document,
                    &format!("{pointer}/{field}"),
                    "missing".into(),
                ))
            }
        }
    }
    if is_list(value) {
        match value.get("items") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    check_object(document, item, &format!("{pointer}/items/{i}"))?;
                }
            }
            Some(other) => {
                return Err(invalid(
                    document,
                    &format!("{pointer}/items"),
                    format!("expected a list, found {}", type_name(other)),
                ))
            }
        }
    }
    Ok(())
}

/// `List`, and the typed lists `kubectl get -o yaml` prints (`PodList`, `DeploymentList`, ...).
pub fn is_list(value: &Value) -> bool {
    value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|kind| kind.ends_with("List"))
        && value.get("items").is_some_and(|items| !items.is_null())
}

/// Every object of a document: the document itself, or the items of a list (recursively), with
/// the JSON pointer of each.
pub fn objects<'v>(value: &'v Value, pointer: &str, out: &mut Vec<(String, &'v Value)>) {
    if is_list(value) {
        let items = value.get("items").and_then(Value::as_array);
        for (i, item) in items.into_iter().flatten().enumerate() {
            objects(item, &format!("{pointer}/items/{i}"), out);
        }
    } else {
        out.push((pointer.to_owned(), value));
    }
}

/// `(group, kind)`: the core group is `""`.
pub fn group_kind(object: &Value) -> (&str, &str) {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    (group, kind)
}

/// `metadata.<field>` as a non-empty string.
pub fn meta_str<'v>(object: &'v Value, field: &str) -> Option<&'v str> {
    object
        .get("metadata")?
        .get(field)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// A bad field, named the way users write it (`spec.template.spec.containers[0].name`).
pub fn invalid(document: &Document, pointer: &str, message: String) -> InjectError {
    InjectError::Invalid {
        location: document.location.clone(),
        field: dotted(pointer),
        message,
    }
}

/// `/spec/containers/0/name` → `spec.containers[0].name`; the root is `(document)`.
pub fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for token in pointer.split('/').skip(1) {
        let token = token.replace("~1", "/").replace("~0", "~");
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{token}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&token);
        }
    }
    if out.is_empty() {
        out.push_str("(document)");
    }
    out
}

pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_documents_from_one_including_empty_ones() {
        let docs = parse(
            "in",
            "---\n# only a comment\n---\napiVersion: v1\nkind: A\n",
        )
        .expect("parses");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].location.to_string(), "in: document 2");
    }

    #[test]
    fn reads_a_json_stream() {
        let docs = parse(
            "in",
            r#"{"apiVersion":"v1","kind":"A"} {"apiVersion":"v1","kind":"B"}"#,
        )
        .expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].location.index, 2);
    }

    #[test]
    fn names_missing_kind_and_bad_list_items() {
        let error = parse("in", "apiVersion: v1\n").expect_err("no kind");
        assert_eq!(error.to_string(), "in: document 1: kind: missing");
        let error = parse("in", "apiVersion: v1\nkind: List\nitems: [3]\n").expect_err("bad item");
        assert_eq!(
            error.to_string(),
            "in: document 1: items[0]: expected a Kubernetes object (a mapping), found a number"
        );
    }

    #[test]
    fn dotted_paths_read_like_kubectl_explain() {
        assert_eq!(
            dotted("/spec/template/spec/containers/0/name"),
            "spec.template.spec.containers[0].name"
        );
        assert_eq!(
            dotted("/metadata/labels/azure.workload.identity~1use"),
            "metadata.labels.azure.workload.identity/use"
        );
        assert_eq!(dotted(""), "(document)");
    }
}
