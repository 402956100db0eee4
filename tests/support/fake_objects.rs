//! Generic object storage for the fake API server: Secrets, MutatingWebhookConfigurations and Leases, with
//! get / create / update (PUT) / patch (JSON patch, merge patch, strategic merge patch keyed by `name`) and
//! optimistic concurrency as the real API server does it: a write carrying a stale
//! `metadata.resourceVersion` (in the PUT body, or left in the object by a patch) is answered 409 Conflict,
//! a create of an existing name 409 AlreadyExists.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::status_object;

/// The object kinds stored here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Secret,
    MutatingWebhookConfiguration,
    Lease,
}

impl Kind {
    fn api_version(self) -> &'static str {
        match self {
            Self::Secret => "v1",
            Self::MutatingWebhookConfiguration => "admissionregistration.k8s.io/v1",
            Self::Lease => "coordination.k8s.io/v1",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::Secret => "Secret",
            Self::MutatingWebhookConfiguration => "MutatingWebhookConfiguration",
            Self::Lease => "Lease",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Self::Secret => "secrets",
            Self::MutatingWebhookConfiguration => "mutatingwebhookconfigurations",
            Self::Lease => "leases",
        }
    }
}

/// What a request does to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Create,
    Update,
    Patch,
}

/// Objects keyed by (kind, namespace — empty for cluster-scoped —, name), with their own version counter.
#[derive(Default)]
pub struct ObjectStore {
    resource_version: u64,
    next_uid: u64,
    objects: BTreeMap<(Kind, String, String), Value>,
}

impl ObjectStore {
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        self.objects
            .get(&(kind, namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Creates or replaces unconditionally (test set-up and "someone else edited it"); returns the new
    /// resourceVersion.
    pub fn put(&mut self, kind: Kind, namespace: &str, mut object: Value) -> u64 {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let key = (kind, namespace.to_owned(), name);
        let previous = self.objects.get(&key).cloned();
        self.stamp(kind, namespace, &mut object, previous.as_ref());
        self.objects.insert(key, object);
        self.resource_version
    }

    pub fn delete(&mut self, kind: Kind, namespace: &str, name: &str) -> bool {
        self.objects
            .remove(&(kind, namespace.to_owned(), name.to_owned()))
            .is_some()
    }

    /// Sets apiVersion/kind, namespace, uid, creationTimestamp (kept from `previous`) and a new version.
    fn stamp(&mut self, kind: Kind, namespace: &str, object: &mut Value, previous: Option<&Value>) {
        self.resource_version += 1;
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind());
        if !object["metadata"].is_object() {
            object["metadata"] = json!({});
        }
        let metadata = &mut object["metadata"];
        if !namespace.is_empty() {
            metadata["namespace"] = json!(namespace);
        }
        let uid = match previous {
            Some(previous) => previous["metadata"]["uid"].clone(),
            None => {
                self.next_uid += 1;
                json!(format!("10000000-0000-0000-0000-{:012}", self.next_uid))
            }
        };
        metadata["uid"] = uid;
        metadata["creationTimestamp"] = json!("2025-01-01T00:00:00Z");
        metadata["resourceVersion"] = json!(self.resource_version.to_string());
    }

    /// Answers one request: (HTTP status, body).
    pub fn handle(
        &mut self,
        kind: Kind,
        verb: Verb,
        namespace: &str,
        name: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (u16, Value) {
        let key = (kind, namespace.to_owned(), name.to_owned());
        let current = self.objects.get(&key).cloned();
        let not_found = || {
            let mut status = status_object(
                404,
                "NotFound",
                &format!("{} \"{name}\" not found", kind.plural()),
            );
            status["details"] = json!({"name": name, "kind": kind.plural()});
            (404, status)
        };
        let parsed = || serde_json::from_slice::<Value>(body);
        match verb {
            Verb::Get => current.map_or_else(not_found, |object| (200, object)),
            Verb::Create => {
                let Ok(mut object) = parsed() else {
                    return (400, status_object(400, "BadRequest", "body is not JSON"));
                };
                let name = object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if name.is_empty() {
                    return (
                        422,
                        status_object(422, "Invalid", "metadata.name: Required value"),
                    );
                }
                let key = (kind, namespace.to_owned(), name.clone());
                if self.objects.contains_key(&key) {
                    let message = format!("{} \"{name}\" already exists", kind.plural());
                    return (409, status_object(409, "AlreadyExists", &message));
                }
                self.stamp(kind, namespace, &mut object, None);
                self.objects.insert(key, object.clone());
                (201, object)
            }
            Verb::Update => {
                let Some(current) = current else {
                    return not_found();
                };
                let Ok(object) = parsed() else {
                    return (400, status_object(400, "BadRequest", "body is not JSON"));
                };
                self.conditional_write(key, &current, object)
            }
            Verb::Patch => {
                let Some(current) = current else {
                    return not_found();
                };
                let patched = match apply_patch(&current, content_type, body) {
                    Ok(patched) => patched,
                    Err((code, message)) => {
                        let reason = if code == 415 {
                            "UnsupportedMediaType"
                        } else {
                            "Invalid"
                        };
                        return (code, status_object(code, reason, &message));
                    }
                };
                self.conditional_write(key, &current, patched)
            }
        }
    }

    /// Stores `object` over `current` unless it names another resourceVersion (409) or another name.
    fn conditional_write(
        &mut self,
        key: (Kind, String, String),
        current: &Value,
        mut object: Value,
    ) -> (u16, Value) {
        let (kind, namespace, name) = key.clone();
        if object["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n != name)
        {
            return (
                400,
                status_object(400, "BadRequest", "the name of the object does not match"),
            );
        }
        let wanted = object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        let have = current["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        if !wanted.is_empty() && wanted != have {
            let message = format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                kind.plural()
            );
            return (409, status_object(409, "Conflict", &message));
        }
        object["metadata"]["name"] = json!(name);
        self.stamp(kind, &namespace, &mut object, Some(current));
        self.objects.insert(key, object.clone());
        (200, object)
    }
}

/// Applies a PATCH body according to its media type.
fn apply_patch(
    current: &Value,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Value, (u16, String)> {
    let media = content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    let parsed: Value =
        serde_json::from_slice(body).map_err(|e| (400, format!("patch is not JSON: {e}")))?;
    let mut patched = current.clone();
    match media {
        "application/json-patch+json" => {
            let patch: json_patch::Patch = serde_json::from_value(parsed)
                .map_err(|e| (400, format!("bad JSON patch: {e}")))?;
            json_patch::patch(&mut patched, &patch).map_err(|e| (422, e.to_string()))?;
        }
        "application/merge-patch+json" => json_patch::merge(&mut patched, &parsed),
        "application/strategic-merge-patch+json" => strategic_merge(&mut patched, &parsed),
        other => return Err((415, format!("unsupported patch type {other:?}"))),
    }
    Ok(patched)
}

/// Merge patch, except that lists of objects with a `name` are merged entry by entry (the patch merge key
/// of `webhooks`, `containers`, ...).
fn strategic_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    strategic_merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (Value::Array(target), Value::Array(patch))
            if patch.iter().all(|p| p.get("name").is_some()) =>
        {
            for entry in patch {
                match target
                    .iter_mut()
                    .find(|t| t.get("name") == entry.get("name"))
                {
                    Some(existing) => strategic_merge(existing, entry),
                    None => target.push(entry.clone()),
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}
