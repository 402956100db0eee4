//! Writing the AdmissionReview response envelope. Written by hand rather than through kube's types:
//! the patch must be a base64 string (kube-rs serialises it as an array of integers).

use base64::Engine;
use serde::Serialize;

use super::wire::{ReviewVersion, KIND};

/// A Kubernetes `Status` for a denial, as kubectl prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub code: u16,
    pub message: String,
}

impl Denial {
    fn reason(&self) -> &'static str {
        match self.code {
            400 => "BadRequest",
            403 => "Forbidden",
            413 => "RequestEntityTooLarge",
            429 => "TooManyRequests",
            _ => "InternalError",
        }
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
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
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
pub fn allowed(
    version: ReviewVersion,
    uid: &str,
    patch_json: Option<&[u8]>,
    warnings: &[String],
) -> Vec<u8> {
    let patch = patch_json.map(|json| base64::engine::general_purpose::STANDARD.encode(json));
    write(
        version,
        Response {
            uid,
            allowed: true,
            patch_type: patch.as_ref().map(|_| "JSONPatch"),
            patch,
            warnings,
            status: None,
        },
    )
}

/// `allowed: false` with a status saying why.
pub fn denied(version: ReviewVersion, uid: &str, denial: &Denial, warnings: &[String]) -> Vec<u8> {
    write(
        version,
        Response {
            uid,
            allowed: false,
            patch_type: None,
            patch: None,
            warnings,
            status: Some(Status {
                metadata: Empty {},
                status: "Failure",
                message: &denial.message,
                reason: denial.reason(),
                code: denial.code,
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
