//! Writing the AdmissionReview response envelope. Written by hand rather than through kube's types:
//! the patch must be a base64 string (kube-rs serialises it as an array of integers).

use serde::Serialize;

use super::wire::{ReviewVersion, KIND};
use crate::mutate::denial::{Denial, DenyReason};

/// The HTTP status code of the `Status` that refuses a pod for `reason`, as kubectl prints it.
pub fn status_code(reason: DenyReason) -> u16 {
    match reason {
        DenyReason::InvalidPod
        | DenyReason::ServiceAccountNotFound
        | DenyReason::MissingClientId => 400,
        DenyReason::RbacDenied => 403,
        DenyReason::ServiceAccountUnavailable | DenyReason::RbacUnavailable => 500,
    }
}

/// The `Status.reason` Kubernetes uses for an HTTP status code.
fn status_reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        403 => "Forbidden",
        413 => "RequestEntityTooLarge",
        429 => "TooManyRequests",
        _ => "InternalError",
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    api_version: &'static str,
    kind: &'static str,
    response: Response<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    uid: &'a str,
    allowed: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    warnings: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<Status<'a>>,
}

#[derive(Serialize)]
struct Status<'a> {
    metadata: Empty,
    status: &'static str,
    message: &'a str,
    reason: &'static str,
    code: u16,
}

#[derive(Serialize)]
struct Empty {}

/// `allowed: true`, with the patch only when there is one (`patch_json` is a JSON array).
/// Written by hand into one buffer sized up front: this is the hot path's whole output, and
/// base64 never needs JSON escaping.
pub fn allowed(
    version: ReviewVersion,
    uid: &str,
    patch_json: Option<&[u8]>,
    warnings: &[String],
) -> Vec<u8> {
    let encoded_len = patch_json.map_or(0, |json| json.len().div_ceil(3) * 4);
    let warnings_len: usize = warnings.iter().map(|w| w.len() + 8).sum();
    let mut out = Vec::with_capacity(192 + uid.len() + encoded_len + warnings_len);
    out.extend_from_slice(b"{\"apiVersion\":\"");
    out.extend_from_slice(version.api_version().as_bytes());
    out.extend_from_slice(b"\",\"kind\":\"");
    out.extend_from_slice(KIND.as_bytes());
    out.extend_from_slice(b"\",\"response\":{\"uid\":");
    write_json(&mut out, &uid);
    out.extend_from_slice(b",\"allowed\":true");
    if let Some(json) = patch_json {
        out.extend_from_slice(b",\"patchType\":\"JSONPatch\",\"patch\":\"");
        // SIMD base64 (runtime-detected): the patch is most of the answer, and the scalar encoder
        // cost about a tenth of a review's instructions.
        base64_simd::STANDARD.encode_append(json, &mut out);
        out.push(b'"');
    }
    if !warnings.is_empty() {
        out.extend_from_slice(b",\"warnings\":");
        write_json(&mut out, &warnings);
    }
    out.extend_from_slice(b"}}");
    out
}

/// Appends `value` as JSON. Writing strings into a `Vec` cannot fail.
fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"null");
    }
}

/// `allowed: false` with a status saying why the pod is refused.
pub fn denied(version: ReviewVersion, uid: &str, denial: &Denial, warnings: &[String]) -> Vec<u8> {
    refused(
        version,
        uid,
        status_code(denial.reason),
        &denial.message,
        warnings,
    )
}

/// `allowed: false` with a status of HTTP code `code`: for a pod's denial, and for requests refused
/// before there is a pod to judge (a malformed review, a body the server would not read).
pub fn refused(
    version: ReviewVersion,
    uid: &str,
    code: u16,
    message: &str,
    warnings: &[String],
) -> Vec<u8> {
    write(
        version,
        Response {
            uid,
            allowed: false,
            warnings,
            status: Some(Status {
                metadata: Empty {},
                status: "Failure",
                message,
                reason: status_reason(code),
                code,
            }),
        },
    )
}

fn write(version: ReviewVersion, response: Response<'_>) -> Vec<u8> {
    let envelope = Envelope {
        api_version: version.api_version(),
        kind: KIND,
        response,
    };
    // Only strings, booleans and integers: serialisation cannot fail.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn allowed_envelope_is_exact_json() {
        let patch = br#"[{"op":"add","path":"/a","value":1}]"#;
        let body = allowed(
            ReviewVersion::V1Beta1,
            "u\"1\\",
            Some(patch),
            &["w \"1\"".to_string(), "w2".to_string()],
        );
        let parsed: Value = serde_json::from_slice(&body).expect("valid JSON");
        assert_eq!(
            parsed,
            json!({
                "apiVersion": "admission.k8s.io/v1beta1",
                "kind": "AdmissionReview",
                "response": {
                    "uid": "u\"1\\",
                    "allowed": true,
                    "patchType": "JSONPatch",
                    "patch": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, patch),
                    "warnings": ["w \"1\"", "w2"]
                }
            })
        );
        let bare: Value =
            serde_json::from_slice(&allowed(ReviewVersion::V1, "u", None, &[])).expect("JSON");
        assert_eq!(
            bare,
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                   "response": {"uid": "u", "allowed": true}})
        );
    }
}
