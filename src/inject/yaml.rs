//! The one place that knows the YAML crate (serde-saphyr, pure safe Rust; docs/dependencies.md says
//! why). Manifests are read the way kubectl reads them — YAML 1.1 scalars (`0644` is octal,
//! `yes`/`on` are booleans), `<<` merge keys, duplicate keys refused — and written so that kubectl
//! reads back the same values: strings a YAML 1.1 reader would take for a boolean, a number or
//! null are quoted.

use serde_json::Value;
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle};

/// A YAML error, with the 1-based number of the document it is in (counting empty documents).
#[derive(Debug)]
pub struct ReadError {
    pub document: usize,
    pub message: String,
}

/// Every document of a YAML stream with its 1-based number, empty documents included as `Null`
/// so that the numbers match what the user counts between `---` separators.
pub fn read_documents(text: &str) -> Result<Vec<(usize, Value)>, ReadError> {
    let outline = outline(text);
    let options = serde_saphyr::options! {
        with_snippet: false,
        legacy_octal_numbers: true,
    };
    let values: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
            let line = e.location().map(|l| l.line());
            ReadError {
                document: outline.document_at(line),
                message: e.to_string(),
            }
        })?;
    // The parser skips null documents; the outline says which ones they were.
    if let Some(error) = outline.error {
        return Err(error);
    }
    let present: Vec<usize> = (1..=outline.documents.len())
        .filter(|&n| !outline.documents[n - 1].null)
        .collect();
    if present.len() != values.len() {
        return Err(ReadError {
            document: outline.documents.len().max(1),
            message: format!(
                "internal error: {} documents read but {} expected",
                values.len(),
                present.len()
            ),
        });
    }
    let mut values = values.into_iter();
    Ok((1..=outline.documents.len())
        .map(|n| {
            let value = if outline.documents[n - 1].null {
                Value::Null
            } else {
                values.next().unwrap_or(Value::Null)
            };
            (n, value)
        })
        .collect())
}

/// One document as block-style YAML, with a final newline.
pub fn write_document(value: &Value) -> Result<String, String> {
    // Long strings stay on one line (no folded `>` blocks): the output diffs line by line
    // against the input manifests.
    let options = serde_saphyr::ser_options! {
        folded_wrap_chars: usize::MAX,
    };
    serde_saphyr::to_string_with_options(value, options).map_err(|e| e.to_string())
}

struct DocumentOutline {
    /// 1-based line of the document's first event.
    start_line: u64,
    /// An empty document, or one holding only a plain null scalar: the parser returns no value
    /// for it.
    null: bool,
}

struct StreamOutline {
    documents: Vec<DocumentOutline>,
    error: Option<ReadError>,
}

impl StreamOutline {
    /// The document holding `line`: the last one starting at or before it.
    fn document_at(&self, line: Option<u64>) -> usize {
        let Some(line) = line else {
            return self.documents.len().max(1);
        };
        self.documents
            .iter()
            .rposition(|d| d.start_line <= line)
            .map_or(1, |i| i + 1)
    }
}

/// Where each document starts and which are null, from the parser's events.
fn outline(text: &str) -> StreamOutline {
    let mut documents: Vec<DocumentOutline> = Vec::new();
    let mut depth = 0usize;
    for event in Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(event) => event,
            Err(e) => {
                let document = documents.len().max(1);
                return StreamOutline {
                    documents,
                    error: Some(ReadError {
                        document,
                        message: e.to_string(),
                    }),
                };
            }
        };
        match event {
            Event::DocumentStart(..) => {
                documents.push(DocumentOutline {
                    start_line: span.start.line() as u64,
                    null: true,
                });
            }
            Event::Scalar(ref value, style, _, ref tag) if depth == 0 => {
                // The parser's rule: an explicit `!!null`, or an untagged plain null spelling.
                let nullish = style == ScalarStyle::Plain
                    && matches!(value.as_ref(), "" | "~" | "null" | "Null" | "NULL");
                let null = tag
                    .as_ref()
                    .map_or(nullish, |tag| tag.is_yaml_core_schema_tag("null"));
                if let Some(document) = documents.last_mut() {
                    document.null = null;
                }
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                if depth == 0 {
                    if let Some(document) = documents.last_mut() {
                        document.null = false;
                    }
                }
                depth += 1;
            }
            Event::SequenceEnd | Event::MappingEnd => depth = depth.saturating_sub(1),
            Event::Alias(..) if depth == 0 => {
                if let Some(document) = documents.last_mut() {
                    document.null = false;
                }
            }
            _ => {}
        }
    }
    StreamOutline {
        documents,
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_documents_counting_empty_ones() {
        let docs =
            read_documents("---\n# a comment\n---\na: 1\n---\n~\n---\nb: [2]\n").expect("reads");
        let numbers: Vec<(usize, bool)> = docs.iter().map(|(n, v)| (*n, v.is_null())).collect();
        assert_eq!(numbers, [(1, true), (2, false), (3, true), (4, false)]);
        assert_eq!(docs[3].1["b"][0], 2);
    }

    #[test]
    fn a_syntax_error_names_its_document_and_line() {
        let error = read_documents("a: 1\n---\nb: 2\n---\nc: [unclosed\n").expect_err("bad");
        assert_eq!(error.document, 3, "{error:?}");
        assert!(error.message.contains("line 5"), "{}", error.message);
    }

    #[test]
    fn reads_scalars_as_kubectl_does() {
        let docs = read_documents("mode: 0644\nenabled: yes\nsize: 1_000\nmerged: {<<: {a: 1}}\n")
            .expect("reads");
        let doc = &docs[0].1;
        assert_eq!(doc["mode"], 0o644);
        assert_eq!(doc["enabled"], true);
        assert_eq!(doc["size"], 1000);
        assert_eq!(doc["merged"]["a"], 1);
    }

    #[test]
    fn refuses_duplicate_keys_as_kubectl_does() {
        let error = read_documents("a: 1\na: 2\n").expect_err("duplicate key");
        assert!(error.message.contains("duplicate"), "{}", error.message);
    }

    #[test]
    fn quotes_strings_a_yaml_1_1_reader_would_retype() {
        let value = serde_json::json!({
            "labels": {"a": "yes", "b": "on", "c": "n", "d": "0755", "e": "1_000", "f": "null"}
        });
        let text = write_document(&value).expect("writes");
        for quoted in [
            "\"yes\"",
            "\"on\"",
            "\"n\"",
            "\"0755\"",
            "\"1_000\"",
            "\"null\"",
        ] {
            assert!(text.contains(quoted), "{quoted} not quoted in\n{text}");
        }
    }

    #[test]
    fn keeps_long_strings_on_one_line_and_multiline_strings_literal() {
        let long = "x".repeat(60) + " " + &"y".repeat(60);
        let value = serde_json::json!({"long": long, "multi": "one\ntwo\n"});
        let text = write_document(&value).expect("writes");
        assert!(text.contains(&format!("long: {long}\n")), "{text}");
        assert!(text.contains("multi: |\n  one\n  two\n"), "{text}");
    }
}
