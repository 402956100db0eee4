//! The envelope read with [`Scanner`], the pod with [`PodView::scan`]: one pass over the body for
//! the reviews the API server sends. Mirrors the `Deserialize` of [`ReviewWire`] and
//! [`RequestWire`]; anything else (a non-pod object, escapes in a kept string, broken JSON) is
//! declined and decoded by serde.

use super::{GroupVersionKind, Object, RequestWire, ReviewWire};
use crate::json_scan::Scanner;
use crate::mutate::view::scan::{optional_str, str, Seen};
use crate::mutate::view::{PodView, Str};

/// The review in `body`, or `None` where serde's decoding must decide.
pub(super) fn review(body: &[u8]) -> Option<ReviewWire<'_, RequestWire<'_>>> {
    let mut s = Scanner::new(body);
    let mut wire = ReviewWire {
        api_version: None,
        kind: None,
        request: None,
    };
    let mut seen = Seen::default();
    s.object(|s, key| {
        match key {
            b"apiVersion" => wire.api_version = seen.read(0, s, optional_str)?,
            b"kind" => wire.kind = seen.read(1, s, optional_str)?,
            b"request" => wire.request = seen.read(2, s, |s| s.nullable(request_wire))?,
            _ => s.skip_value()?,
        }
        Some(())
    })?;
    s.finish()?;
    Some(wire)
}

/// Like `RequestWire`'s `Deserialize`: a repeated key overwrites.
fn request_wire<'a>(s: &mut Scanner<'a>) -> Option<RequestWire<'a>> {
    let mut request = RequestWire::default();
    s.object(|s, key| {
        match key {
            b"uid" => request.uid = optional_str(s)?,
            b"kind" => request.kind = s.nullable(group_version_kind)?,
            b"subResource" => request.sub_resource = optional_str(s)?,
            b"operation" => request.operation = optional_str(s)?,
            b"namespace" => request.namespace = optional_str(s)?,
            b"object" if s.null() => request.object = Object::Missing,
            b"object" if request.is_pod_create() => request.object = Object::Pod(PodView::scan(s)?),
            // Any other object is kept raw, which only serde can hand out.
            b"object" => return None,
            _ => s.skip_value()?,
        }
        Some(())
    })?;
    Some(request)
}

fn group_version_kind<'a>(s: &mut Scanner<'a>) -> Option<GroupVersionKind<'a>> {
    let mut gvk = GroupVersionKind {
        group: Str::default(),
        kind: Str::default(),
    };
    let mut seen = Seen::default();
    s.object(|s, key| {
        match key {
            b"group" => gvk.group = seen.read(0, s, str)?,
            b"kind" => gvk.kind = seen.read(1, s, str)?,
            _ => s.skip_value()?,
        }
        Some(())
    })?;
    Some(gvk)
}
