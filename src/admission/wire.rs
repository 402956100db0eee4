//! Decoding the AdmissionReview envelope. Only the request fields the webhook reads are decoded; the
//! pod stays a raw slice of the body until the mutation asks for its view.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::mutate::view::{PodView, Str};

mod scan;

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
struct ReviewWire<'a, R> {
    #[serde(borrow, default)]
    api_version: Option<Str<'a>>,
    #[serde(borrow, default)]
    kind: Option<Str<'a>>,
    #[serde(default = "none")]
    request: Option<R>,
}

fn none<R>() -> Option<R> {
    None
}

/// The fields of `request` the webhook uses.
#[derive(Debug, Default)]
pub struct RequestWire<'a> {
    pub uid: Option<Str<'a>>,
    pub kind: Option<GroupVersionKind<'a>>,
    pub sub_resource: Option<Str<'a>>,
    pub operation: Option<Str<'a>>,
    pub namespace: Option<Str<'a>>,
    pub object: Object<'a>,
}

/// `request.object`, decoded as far as the webhook needs it.
// The pod is the variant nearly every review carries and it lives on the stack for one request:
// boxing it would cost an allocation per review to shrink the rare variants.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Default)]
pub enum Object<'a> {
    /// Absent or `null`.
    #[default]
    Missing,
    /// A pod CREATE's object, decoded in the same pass as the envelope.
    Pod(PodView<'a>),
    /// Anything else (or a pod whose `kind`/`operation` came after it), kept unparsed.
    Raw(&'a RawValue),
    /// A pod CREATE whose object is not a valid pod: why.
    Invalid(String),
}

impl<'de: 'a, 'a> Deserialize<'de> for RequestWire<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RequestVisitor;
        impl<'de> Visitor<'de> for RequestVisitor {
            type Value = RequestWire<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an AdmissionReview request")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut request = RequestWire::default();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match key.as_str() {
                        "uid" => request.uid = map.next_value()?,
                        "kind" => request.kind = map.next_value()?,
                        "subResource" => request.sub_resource = map.next_value()?,
                        "operation" => request.operation = map.next_value()?,
                        "namespace" => request.namespace = map.next_value()?,
                        // The API server writes kind and operation before the object, so the pod
                        // is decoded right here instead of being scanned twice.
                        "object" if request.is_pod_create() => {
                            request.object = map
                                .next_value::<Option<PodView<'de>>>()?
                                .map_or(Object::Missing, Object::Pod)
                        }
                        "object" => {
                            request.object = map
                                .next_value::<Option<&'de RawValue>>()?
                                .map_or(Object::Missing, Object::Raw)
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(request)
            }
        }
        deserializer.deserialize_map(RequestVisitor)
    }
}

/// The same request with the object kept raw: the slow path that names exactly what is wrong
/// when the single pass failed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequestWire<'a> {
    #[serde(borrow, default)]
    uid: Option<Str<'a>>,
    #[serde(borrow, default)]
    kind: Option<GroupVersionKind<'a>>,
    #[serde(borrow, default)]
    sub_resource: Option<Str<'a>>,
    #[serde(borrow, default)]
    operation: Option<Str<'a>>,
    #[serde(borrow, default)]
    namespace: Option<Str<'a>>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
}

impl<'a> RawRequestWire<'a> {
    fn into_request(self) -> RequestWire<'a> {
        let mut request = RequestWire {
            uid: self.uid,
            kind: self.kind,
            sub_resource: self.sub_resource,
            operation: self.operation,
            namespace: self.namespace,
            object: Object::Missing,
        };
        request.object = match self.object {
            None => Object::Missing,
            Some(raw) if request.is_pod_create() => match PodView::from_json(raw.get()) {
                Ok(pod) => Object::Pod(pod),
                Err(e) => Object::Invalid(e.to_string()),
            },
            Some(raw) => Object::Raw(raw),
        };
        request
    }
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

/// Decodes a review: in one pass by the scanner ([`crate::json_scan`]) when it can, else by serde,
/// which names what is wrong with a bad body.
pub fn decode(body: &[u8]) -> Result<Review<'_>, DecodeError> {
    decode_by(body, |body| match scan::review(body) {
        Some(wire) => Ok(wire),
        None => {
            // Rare for the API server's own reviews: worth seeing when chasing CPU per review.
            tracing::debug!("review body decoded by serde: the one-pass scanner declined it");
            serde_decode(body)
        }
    })
}

/// [`decode`] by serde alone: the reference reading, which [`decode`] must match on every body
/// (the differential tests and fuzz target compare them), and the bench's baseline.
pub fn decode_with_serde(body: &[u8]) -> Result<Review<'_>, DecodeError> {
    decode_by(body, serde_decode)
}

/// Whether [`decode`] reads `body` in its single scanned pass, rather than handing it to serde.
pub fn scanned(body: &[u8]) -> bool {
    scan::review(body).is_some()
}

fn decode_by<'a>(
    body: &'a [u8],
    read: impl FnOnce(&'a [u8]) -> Result<ReviewWire<'a, RequestWire<'a>>, DecodeError>,
) -> Result<Review<'a>, DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError {
            message: "request body is empty: expected an AdmissionReview".into(),
            version: ReviewVersion::V1,
            uid: String::new(),
        });
    }
    check(read(body)?)
}

/// The review decoded by serde: the reference reading, for bodies the scanner declines. Kept out
/// of [`decode`]: inlined, serde's reading of the pod made the scanner's hot code several times
/// larger and spread it over more of the instruction cache, which the TLS, HTTP/2 and kernel code
/// run between two reviews evicts.
#[cold]
#[inline(never)]
fn serde_decode(body: &[u8]) -> Result<ReviewWire<'_, RequestWire<'_>>, DecodeError> {
    match serde_json::from_slice(body) {
        Ok(wire) => Ok(wire),
        Err(_) => slow_decode(body),
    }
}

/// The two-pass decode: envelope with a raw object, then the pod. Only failed bodies come here,
/// so that a broken pod is still answered with the request's uid.
fn slow_decode(body: &[u8]) -> Result<ReviewWire<'_, RequestWire<'_>>, DecodeError> {
    let wire: ReviewWire<'_, RawRequestWire<'_>> = match serde_json::from_slice(body) {
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
    Ok(ReviewWire {
        api_version: wire.api_version,
        kind: wire.kind,
        request: wire.request.map(RawRequestWire::into_request),
    })
}

fn check<'a>(wire: ReviewWire<'a, RequestWire<'a>>) -> Result<Review<'a>, DecodeError> {
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
