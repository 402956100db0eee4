//! The `injected-identity` pod annotation: which client and tenant ID this webhook put into the
//! pod's env. A reinvocation compares env values with it to tell its own values from the user's.

use serde::{Deserialize, Serialize};

use super::names::INJECTED_IDENTITY_ANNOTATION;
use super::patch::{MetadataPatch, PatchOp, PatchValue, Pointer};
use super::view::PodView;

/// The IDs are `String`s in a record read from a pod, and borrowed from the plan in one being
/// written, which then costs no copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InjectedIdentity<Id = String> {
    #[serde(rename = "clientID")]
    pub client_id: Id,
    #[serde(rename = "tenantID")]
    pub tenant_id: Id,
}

impl InjectedIdentity {
    /// What the pod says was injected last time; a missing or unreadable record means "nothing known".
    pub fn previous(pod: &PodView<'_>) -> Option<Self> {
        serde_json::from_str(pod.annotation(INJECTED_IDENTITY_ANNOTATION)?).ok()
    }
}

impl<Id: Serialize> InjectedIdentity<Id> {
    fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Writes the record unless the pod already carries exactly this one.
pub fn record_op(pod: &PodView<'_>, current: &InjectedIdentity<&str>) -> Option<PatchOp> {
    let value = current.to_annotation();
    if pod.annotation(INJECTED_IDENTITY_ANNOTATION) == Some(value.as_str()) {
        return None;
    }
    let entry = |value| vec![(INJECTED_IDENTITY_ANNOTATION.to_owned(), value)];
    let op = match pod.metadata.as_ref() {
        None => PatchOp::add(
            Pointer::Fixed("/metadata"),
            PatchValue::Metadata(MetadataPatch {
                annotations: entry(value),
            }),
        ),
        Some(metadata) if metadata.annotations.is_none() => PatchOp::add(
            Pointer::Fixed("/metadata/annotations"),
            PatchValue::Map(entry(value)),
        ),
        Some(_) => PatchOp::add(
            Pointer::Key {
                object: "/metadata/annotations",
                key: INJECTED_IDENTITY_ANNOTATION,
            },
            PatchValue::String(value),
        ),
    };
    Some(op)
}
