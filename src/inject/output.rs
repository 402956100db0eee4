//! Printing the result: YAML documents, JSON (one object, or a `List` as `kubectl get -o json` prints
//! several), or the JSON patch of every changed document.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::documents::meta_str;
use super::process::Processed;
use super::{yaml, InjectError};
use crate::config::OutputFormat;

pub fn render(format: OutputFormat, processed: &Processed) -> Result<String, InjectError> {
    match format {
        OutputFormat::Yaml => yaml(processed),
        OutputFormat::Json => {
            let mut values: Vec<&Value> = processed.documents.iter().map(|d| &d.value).collect();
            let list;
            let value = if values.len() == 1 {
                values.remove(0)
            } else {
                list = json!({
                    "apiVersion": "v1",
                    "items": values,
                    "kind": "List",
                    "metadata": {"resourceVersion": ""},
                });
                &list
            };
            pretty(value)
        }
        OutputFormat::Patch => {
            let entries: Vec<Value> = processed
                .patches
                .iter()
                .filter_map(|(index, ops)| Some((processed.documents.get(*index)?, ops)))
                .map(|(document, ops)| {
                    let mut entry = Map::new();
                    entry.insert("source".into(), document.location.source.clone().into());
                    entry.insert("document".into(), document.location.index.into());
                    for field in ["apiVersion", "kind"] {
                        if let Some(value) = document.value.get(field) {
                            entry.insert(field.into(), value.clone());
                        }
                    }
                    for field in ["namespace", "name"] {
                        if let Some(value) = meta_str(&document.value, field) {
                            entry.insert(field.into(), value.into());
                        }
                    }
                    entry.insert("patch".into(), Value::Array(ops.clone()));
                    Value::Object(entry)
                })
                .collect();
            pretty(&Value::Array(entries))
        }
    }
}

/// Block-style YAML documents separated by `---`, field order as in the input so the output diffs
/// cleanly against the source manifests.
fn yaml(processed: &Processed) -> Result<String, InjectError> {
    let mut out = String::new();
    for document in &processed.documents {
        let text = yaml::write_document(&document.value).map_err(|e| InjectError::Internal {
            message: format!("{}: cannot print as YAML: {e}", document.location),
        })?;
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&text);
    }
    Ok(out)
}

/// Four-space indentation and a final newline, as kubectl prints JSON.
fn pretty(value: &Value) -> Result<String, InjectError> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    value
        .serialize(&mut serializer)
        .map_err(|e| InjectError::Internal {
            message: format!("cannot print as JSON: {e}"),
        })?;
    out.push(b'\n');
    String::from_utf8(out).map_err(|e| InjectError::Internal {
        message: e.to_string(),
    })
}
