//! The `injected-identity` pod annotation: which client and tenant ID this webhook put into the
//! pod's env. A reinvocation compares env values with it to tell its own values from the user's.

use serde::{Deserialize, Serialize};

use super::names::INJECTED_IDENTITY_ANNOTATION;
use super::patch::{escape_token, MetadataPatch, PatchOp, PatchValue};
use super::view::PodView;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedIdentity {
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(rename = "tenantID")]
    pub tenant_id: String,
}

impl InjectedIdentity {
    /// What the pod says was injected last time; a missing or unreadable record means "nothing known".
    pub fn previous(pod: &PodView<'_>) -> Option<Self> {
        serde_json::from_str(pod.annotation(INJECTED_IDENTITY_ANNOTATION)?).ok()
    }

    fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Writes the record unless the pod already carries exactly this one.
pub fn record_op(pod: &PodView<'_>, current: &InjectedIdentity) -> Option<PatchOp> {
    let value = current.to_annotation();
    if pod.annotation(INJECTED_IDENTITY_ANNOTATION) == Some(value.as_str()) {
        return None;
    }
    let entry = vec![(INJECTED_IDENTITY_ANNOTATION.to_owned(), value)];
    let op = match pod.metadata.as_ref() {
        None => PatchOp::add(
            "/metadata".into(),
            PatchValue::Metadata(MetadataPatch { annotations: entry }),
        ),
        Some(metadata) if metadata.annotations.is_none() => {
            PatchOp::add("/metadata/annotations".into(), PatchValue::Map(entry))
        }
        Some(_) => {
            let (key, value) = entry.into_iter().next()?;
            PatchOp::add(
                format!("/metadata/annotations/{}", escape_token(&key)),
                PatchValue::String(value),
            )
        }
    };
    Some(op)
}
