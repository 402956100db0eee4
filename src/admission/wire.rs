//! Decoding the AdmissionReview envelope. Only the request fields the webhook reads are decoded; the
//! pod stays a raw slice of the body until the mutation asks for its view.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::mutate::view::Str;

pub const API_VERSION_V1: &str = "admission.k8s.io/v1";
pub const API_VERSION_V1BETA1: &str = "admission.k8s.io/v1beta1";
pub const KIND: &str = "AdmissionReview";

/// The AdmissionReview version a response must be written in: the request's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewVersion {
    V1,
    V1Beta1,
}

impl ReviewVersion {
    pub fn api_version(self) -> &'static str {
        match self {
            ReviewVersion::V1 => API_VERSION_V1,
            ReviewVersion::V1Beta1 => API_VERSION_V1BETA1,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReviewWire<'a> {
    #[serde(borrow, default)]
    api_version: Option<Str<'a>>,
    #[serde(borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(borrow, default)]
    request: Option<RequestWire<'a>>,
}

/// The fields of `request` the webhook uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestWire<'a> {
    #[serde(borrow, default)]
    pub uid: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub kind: Option<GroupVersionKind<'a>>,
    #[serde(borrow, default)]
    pub sub_resource: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub operation: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub namespace: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub object: Option<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct GroupVersionKind<'a> {
    #[serde(borrow, default)]
    pub group: Str<'a>,
    #[serde(borrow, default)]
    pub kind: Str<'a>,
}

/// A decoded review: its version, its uid and the request.
#[derive(Debug)]
pub struct Review<'a> {
    pub version: ReviewVersion,
    pub uid: String,
    pub request: RequestWire<'a>,
}

impl RequestWire<'_> {
    /// Only pod CREATE is mutated; a subresource (binding, eviction…) is never a pod.
    pub fn is_pod_create(&self) -> bool {
        let is_pod = self
            .kind
            .as_ref()
            .is_some_and(|k| k.group.as_str().is_empty() && k.kind.as_str() == "Pod");
        let operation = self.operation.as_ref().map(Str::as_str);
        let sub_resource = self.sub_resource.as_ref().map_or("", Str::as_str);
        is_pod && operation == Some("CREATE") && sub_resource.is_empty()
    }
}

/// Why a body is not a usable AdmissionReview, with what can be recovered for the error response.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    pub message: String,
    pub version: ReviewVersion,
    pub uid: String,
}

pub fn decode(body: &[u8]) -> Result<Review<'_>, DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError {
            message: "request body is empty: expected an AdmissionReview".into(),
            version: ReviewVersion::V1,
            uid: String::new(),
        });
    }
    let wire: ReviewWire<'_> = match serde_json::from_slice(body) {
        Ok(wire) => wire,
        Err(e) => {
            let (version, uid) = recover_identity(body);
            let message = if e.is_syntax() || e.is_eof() {
                format!("request body is not valid JSON: {e}")
            } else {
                format!("request body is not a valid AdmissionReview: {e}")
            };
            return Err(DecodeError {
                message,
                version,
                uid,
            });
        }
    };
    let uid = wire
        .request
        .as_ref()
        .and_then(|r| r.uid.as_ref())
        .map(|u| u.as_str().to_owned())
        .unwrap_or_default();
    let fail = |message: String, version| DecodeError {
        message,
        version,
        uid: uid.clone(),
    };
    let version = match wire.api_version.as_ref().map(Str::as_str) {
        // Requests without apiVersion are read as v1, as controller-runtime does.
        None | Some(API_VERSION_V1) => ReviewVersion::V1,
        Some(API_VERSION_V1BETA1) => ReviewVersion::V1Beta1,
        Some(other) => {
            return Err(fail(
                format!("unsupported apiVersion {other:?}: expected {API_VERSION_V1} or {API_VERSION_V1BETA1}"),
                ReviewVersion::V1,
            ))
        }
    };
    if let Some(kind) = wire.kind.as_ref().map(Str::as_str) {
        if kind != KIND {
            return Err(fail(
                format!("unsupported kind {kind:?}: expected {KIND}"),
                version,
            ));
        }
    }
    let Some(request) = wire.request else {
        return Err(fail("the AdmissionReview has no request".into(), version));
    };
    if uid.is_empty() {
        return Err(fail(
            "the AdmissionReview request has no uid".into(),
            version,
        ));
    }
    Ok(Review {
        version,
        uid,
        request,
    })
}

/// Best effort on a body that failed to decode: answer in the request's version and with its uid
/// when those parts are readable.
fn recover_identity(body: &[u8]) -> (ReviewVersion, String) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (ReviewVersion::V1, String::new());
    };
    let version = match value.get("apiVersion").and_then(|v| v.as_str()) {
        Some(API_VERSION_V1BETA1) => ReviewVersion::V1Beta1,
        _ => ReviewVersion::V1,
    };
    let uid = value
        .get("request")
        .and_then(|r| r.get("uid"))
        .and_then(|u| u.as_str())
        .unwrap_or_default()
        .to_owned();
    (version, uid)
}
