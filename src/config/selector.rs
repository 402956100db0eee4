//! `AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR`: a JSON `metav1.LabelSelector`, checked at startup.
//!
//! Upstream decoded it without checking its content, so a selector the API server rejects (say `In` with no
//! values) was only noticed when every identity-binding pod failed to be created (W05). We check its shape
//! and re-emit it with canonical field names. Field names match case-insensitively, as Go's `encoding/json`
//! matched them, so existing configurations keep working; unknown fields are refused rather than ignored,
//! because an ignored typo would silently widen the selector to "every bundle of the signer".

use serde_json::{Map, Value};

use super::names::{label_value, qualified_name};

/// Validates `raw` (already known to be non-blank) and returns the selector with canonical field names.
pub fn parse_label_selector(raw: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(raw).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(fields) = value else {
        return Err("expected a JSON object like {\"matchLabels\":{\"k\":\"v\"}}".into());
    };
    let mut out = Map::new();
    for (name, value) in fields {
        let canonical = match name.to_ascii_lowercase().as_str() {
            "matchlabels" => "matchLabels",
            "matchexpressions" => "matchExpressions",
            _ => {
                return Err(format!(
                    "unknown field {name:?}; accepted: matchLabels, matchExpressions"
                ))
            }
        };
        if out.contains_key(canonical) {
            return Err(format!("field {canonical} is given more than once"));
        }
        let checked = match (canonical, value) {
            (_, Value::Null) => continue,
            ("matchLabels", value) => match_labels(value)?,
            (_, value) => match_expressions(value)?,
        };
        out.insert(canonical.to_owned(), checked);
    }
    Ok(Value::Object(out))
}

fn match_labels(value: Value) -> Result<Value, String> {
    let Value::Object(labels) = value else {
        return Err("matchLabels must be an object of string keys to string values".into());
    };
    for (key, value) in &labels {
        qualified_name(key).map_err(|r| format!("matchLabels key {key:?}: {r}"))?;
        let Value::String(value) = value else {
            return Err(format!("matchLabels value of {key:?} must be a string"));
        };
        label_value(value).map_err(|r| format!("matchLabels value {value:?}: {r}"))?;
    }
    Ok(Value::Object(labels))
}

fn match_expressions(value: Value) -> Result<Value, String> {
    let Value::Array(items) = value else {
        return Err("matchExpressions must be an array".into());
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| requirement(item).map_err(|r| format!("matchExpressions[{i}]: {r}")))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// One `LabelSelectorRequirement`: `key`, `operator` (`In`, `NotIn`, `Exists`, `DoesNotExist`) and `values`
/// (non-empty for `In`/`NotIn`, absent or empty for the other two: the API server's rules).
fn requirement(item: Value) -> Result<Value, String> {
    let Value::Object(fields) = item else {
        return Err("must be an object with key, operator and values".into());
    };
    let (mut key, mut operator, mut values) = (None, None, None);
    for (name, value) in fields {
        let slot = match name.to_ascii_lowercase().as_str() {
            "key" => &mut key,
            "operator" => &mut operator,
            "values" => &mut values,
            _ => {
                return Err(format!(
                    "unknown field {name:?}; accepted: key, operator, values"
                ))
            }
        };
        if slot.replace(value).is_some() {
            return Err(format!("field {name:?} is given more than once"));
        }
    }
    let key = match key {
        Some(Value::String(key)) => key,
        _ => return Err("key must be a string".into()),
    };
    qualified_name(&key).map_err(|r| format!("key {key:?}: {r}"))?;
    let operator = match operator {
        Some(Value::String(op)) => op,
        _ => return Err("operator must be one of In, NotIn, Exists, DoesNotExist".into()),
    };
    let values = match values {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) => values
            .into_iter()
            .map(|v| match v {
                Value::String(s) => label_value(&s)
                    .map(|()| s.clone())
                    .map_err(|r| format!("value {s:?}: {r}")),
                _ => Err("values must be strings".into()),
            })
            .collect::<Result<Vec<_>, String>>()?,
        Some(_) => return Err("values must be an array of strings".into()),
    };
    match (operator.as_str(), values.is_empty()) {
        ("In" | "NotIn", true) => return Err(format!("operator {operator} needs values")),
        ("Exists" | "DoesNotExist", false) => {
            return Err(format!("operator {operator} takes no values"))
        }
        ("In" | "NotIn" | "Exists" | "DoesNotExist", _) => {}
        _ => {
            return Err(format!(
                "operator {operator:?} is not one of In, NotIn, Exists, DoesNotExist"
            ))
        }
    }
    let mut out = Map::new();
    out.insert("key".into(), Value::String(key));
    out.insert("operator".into(), Value::String(operator));
    if !values.is_empty() {
        out.insert(
            "values".into(),
            Value::Array(values.into_iter().map(Value::String).collect()),
        );
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_and_canonicalises_selectors() {
        let cases = [
            ("{}", json!({})),
            (r#"{"matchLabels":null}"#, json!({})),
            (
                r#"{"matchLabels":{"app.kubernetes.io/name":"ca","x":""}}"#,
                json!({"matchLabels":{"app.kubernetes.io/name":"ca","x":""}}),
            ),
            (
                r#"{"MatchLabels":{"a":"b"},"MATCHEXPRESSIONS":[{"Key":"k","Operator":"In","Values":["v"]}]}"#,
                json!({"matchLabels":{"a":"b"},"matchExpressions":[{"key":"k","operator":"In","values":["v"]}]}),
            ),
            (
                r#"{"matchExpressions":[{"key":"k","operator":"Exists","values":[]}]}"#,
                json!({"matchExpressions":[{"key":"k","operator":"Exists"}]}),
            ),
            (
                r#"{"matchExpressions":[{"key":"k","operator":"DoesNotExist"}]}"#,
                json!({"matchExpressions":[{"key":"k","operator":"DoesNotExist"}]}),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_label_selector(raw), Ok(want), "{raw}");
        }
    }

    #[test]
    fn refuses_bad_selectors_saying_why() {
        let cases = [
            ("{", "invalid JSON"),
            ("[]", "expected a JSON object"),
            (r#"{"matchLabel":{}}"#, "unknown field \"matchLabel\""),
            (r#"{"matchLabels":{},"MatchLabels":{}}"#, "more than once"),
            (r#"{"matchLabels":[]}"#, "matchLabels must be an object"),
            (r#"{"matchLabels":{"a":1}}"#, "must be a string"),
            (r#"{"matchLabels":{"-a":"b"}}"#, "matchLabels key \"-a\""),
            (
                r#"{"matchLabels":{"a":"b c"}}"#,
                "matchLabels value \"b c\"",
            ),
            (r#"{"matchExpressions":{}}"#, "must be an array"),
            (r#"{"matchExpressions":[1]}"#, "matchExpressions[0]"),
            (
                r#"{"matchExpressions":[{"key":"k","operator":"In"}]}"#,
                "In needs values",
            ),
            (
                r#"{"matchExpressions":[{"key":"k","operator":"NotIn","values":[]}]}"#,
                "NotIn needs values",
            ),
            (
                r#"{"matchExpressions":[{"key":"k","operator":"Exists","values":["v"]}]}"#,
                "Exists takes no values",
            ),
            (
                r#"{"matchExpressions":[{"key":"k","operator":"in","values":["v"]}]}"#,
                "\"in\" is not one of",
            ),
            (
                r#"{"matchExpressions":[{"operator":"Exists"}]}"#,
                "key must be a string",
            ),
            (
                r#"{"matchExpressions":[{"key":"k"}]}"#,
                "operator must be one of",
            ),
            (
                r#"{"matchExpressions":[{"key":"k","operator":"In","values":[1]}]}"#,
                "values must be strings",
            ),
            (
                r#"{"matchExpressions":[{"key":"k","operator":"In","values":"v"}]}"#,
                "values must be an array",
            ),
            (
                r#"{"matchExpressions":[{"key":"k","op":"In"}]}"#,
                "unknown field \"op\"",
            ),
        ];
        for (raw, want) in cases {
            let err = parse_label_selector(raw).err().unwrap_or_default();
            assert!(err.contains(want), "{raw}: {err}");
        }
    }
}
