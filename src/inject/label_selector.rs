//! A `metav1.LabelSelector` evaluated the way the API server evaluates a webhook's
//! `namespaceSelector` and `objectSelector`: every requirement must hold, so an empty (or absent)
//! selector selects everything. The shape is checked by the same rules as the webhook's own
//! selector setting ([`crate::config::parse_label_selector`]), so a selector the API server would
//! refuse is refused here too instead of being half evaluated.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// Label key to value, as on an object's `metadata.labels`.
pub type Labels = BTreeMap<String, String>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    /// A `matchLabels` entry.
    Equals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    /// The selector of a webhook configuration field; `null` or absent selects everything.
    pub fn parse(value: Option<&Value>) -> Result<Self, String> {
        let Some(value) = value.filter(|v| !v.is_null()) else {
            return Ok(Self::default());
        };
        let canonical = crate::config::parse_label_selector(&value.to_string())?;
        let mut requirements = Vec::new();
        let labels = canonical.get("matchLabels").and_then(Value::as_object);
        for (key, value) in labels.into_iter().flatten() {
            requirements.push(Requirement {
                key: key.clone(),
                operator: Operator::Equals,
                values: vec![value.as_str().unwrap_or_default().to_owned()],
            });
        }
        let expressions = canonical.get("matchExpressions").and_then(Value::as_array);
        for expression in expressions.into_iter().flatten() {
            let text = |field: &str| expression.get(field).and_then(Value::as_str);
            let operator = match text("operator") {
                Some("In") => Operator::In,
                Some("NotIn") => Operator::NotIn,
                Some("Exists") => Operator::Exists,
                Some("DoesNotExist") => Operator::DoesNotExist,
                other => {
                    return Err(format!(
                        "operator {other:?} is not one of In, NotIn, Exists, DoesNotExist"
                    ))
                }
            };
            let values = expression.get("values").and_then(Value::as_array);
            requirements.push(Requirement {
                key: text("key").unwrap_or_default().to_owned(),
                operator,
                values: values
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
            });
        }
        Ok(Self { requirements })
    }

    /// The first requirement `labels` fail, or `None` when the selector selects them.
    pub fn unmet(&self, labels: &Labels) -> Option<&Requirement> {
        self.requirements.iter().find(|r| !r.holds(labels))
    }
}

impl Requirement {
    fn holds(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::In => value.is_some_and(|v| self.values.contains(v)),
            // As in Kubernetes: an object without the label is not in the excluded set.
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// The form `kubectl get -l` takes: `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut values = self.values.clone();
        values.sort();
        let values = values.join(",");
        match self.operator {
            Operator::Equals => write!(f, "{}={values}", self.key),
            Operator::In => write!(f, "{} in ({values})", self.key),
            Operator::NotIn => write!(f, "{} notin ({values})", self.key),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

/// Labels from literal pairs, for the tests of this module and of the webhook configuration.
#[cfg(test)]
pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn selector(value: Value) -> LabelSelector {
        LabelSelector::parse(Some(&value)).expect("valid selector")
    }

    #[test]
    fn an_empty_or_absent_selector_selects_everything() {
        for empty in [
            LabelSelector::parse(None),
            LabelSelector::parse(Some(&Value::Null)),
        ] {
            assert_eq!(empty.expect("valid").unmet(&labels(&[])), None);
        }
        assert_eq!(selector(json!({})).unmet(&labels(&[("a", "b")])), None);
    }

    #[test]
    fn each_operator_as_kubernetes_evaluates_it() {
        let values = json!(["x", "y"]);
        let cases = [
            (json!({"matchLabels": {"k": "x"}}), [true, false, false]),
            (
                json!({"matchExpressions": [{"key": "k", "operator": "In", "values": values}]}),
                [true, false, false],
            ),
            // An object without the label is not in the excluded set.
            (
                json!({"matchExpressions": [{"key": "k", "operator": "NotIn", "values": values}]}),
                [false, true, true],
            ),
            (
                json!({"matchExpressions": [{"key": "k", "operator": "Exists"}]}),
                [true, true, false],
            ),
            (
                json!({"matchExpressions": [{"key": "k", "operator": "DoesNotExist"}]}),
                [false, false, true],
            ),
        ];
        let objects = [
            labels(&[("k", "x")]),
            labels(&[("k", "z")]),
            labels(&[("other", "x")]),
        ];
        for (raw, want) in cases {
            let selector = selector(raw.clone());
            for (object, want) in objects.iter().zip(want) {
                assert_eq!(
                    selector.unmet(object).is_none(),
                    want,
                    "{raw} on {object:?}"
                );
            }
        }
    }

    #[test]
    fn every_requirement_must_hold_and_the_first_unmet_is_named() {
        let selector = selector(json!({
            "matchLabels": {"team": "a"},
            "matchExpressions": [
                {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system", "b"]},
                {"key": "frozen", "operator": "DoesNotExist"}
            ]
        }));
        let ok = labels(&[("team", "a"), ("kubernetes.io/metadata.name", "apps")]);
        assert_eq!(selector.unmet(&ok), None);
        let system = labels(&[
            ("team", "a"),
            ("kubernetes.io/metadata.name", "kube-system"),
        ]);
        assert_eq!(
            selector.unmet(&system).map(ToString::to_string).as_deref(),
            Some("kubernetes.io/metadata.name notin (b,kube-system)")
        );
        let frozen = labels(&[("team", "a"), ("frozen", "")]);
        assert_eq!(
            selector.unmet(&frozen).map(ToString::to_string).as_deref(),
            Some("!frozen")
        );
        assert_eq!(
            selector
                .unmet(&labels(&[]))
                .map(ToString::to_string)
                .as_deref(),
            Some("team=a")
        );
    }

    #[test]
    fn a_selector_the_api_server_would_refuse_is_refused() {
        let bad = json!({"matchExpressions": [{"key": "k", "operator": "In", "values": []}]});
        let error = LabelSelector::parse(Some(&bad)).expect_err("In needs values");
        assert!(error.contains("In needs values"), "{error}");
        let error = LabelSelector::parse(Some(&json!({"matchLabel": {}}))).expect_err("typo");
        assert!(error.contains("matchLabel"), "{error}");
    }
}
