//! Generic object storage for the fake API server: Secrets, MutatingWebhookConfigurations and Leases, with
//! get / create / update (PUT) / patch (JSON patch, merge patch, strategic merge patch keyed by `name`) and
//! optimistic concurrency as the real API server does it: a write carrying a stale
//! `metadata.resourceVersion` (in the PUT body, or left in the object by a patch) is answered 409 Conflict,
//! a create of an existing name 409 AlreadyExists. Every change is logged and broadcast, so Secrets and
//! MutatingWebhookConfigurations can be listed and watched (`fieldSelector=metadata.name=…` supported).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::status_object;

/// The object kinds stored here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Secret,
    MutatingWebhookConfiguration,
    Lease,
}

impl Kind {
    pub fn api_version(self) -> &'static str {
        match self {
            Self::Secret => "v1",
            Self::MutatingWebhookConfiguration => "admissionregistration.k8s.io/v1",
            Self::Lease => "coordination.k8s.io/v1",
        }
    }

    pub fn kind(self) -> &'static str {
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

/// One change, as a watch reports it.
#[derive(Debug, Clone)]
pub struct ObjectEvent {
    pub kind: Kind,
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    /// ADDED, MODIFIED or DELETED.
    pub event_type: &'static str,
    pub resource_version: u64,
    pub object: Value,
}

/// What open watches of stored objects receive.
#[derive(Debug, Clone)]
pub enum ObjectBroadcast {
    Event(ObjectEvent),
    /// End every open watch (the client re-watches).
    Close,
}

/// Objects keyed by (kind, namespace — empty for cluster-scoped —, name), with their own version counter.
pub struct ObjectStore {
    resource_version: u64,
    next_uid: u64,
    objects: BTreeMap<(Kind, String, String), Value>,
    log: Vec<ObjectEvent>,
    changes: broadcast::Sender<ObjectBroadcast>,
}

impl Default for ObjectStore {
    fn default() -> Self {
        Self {
            resource_version: 0,
            next_uid: 0,
            objects: BTreeMap::new(),
            log: Vec::new(),
            changes: broadcast::channel(1024).0,
        }
    }
}

/// Which objects a list or watch selects: one kind, one namespace (or all), and optionally one name
/// (`fieldSelector=metadata.name=NAME`).
#[derive(Debug, Clone)]
pub struct Selection {
    pub kind: Kind,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl Selection {
    /// `None` for a field selector the fake does not understand (only `metadata.name=` is).
    pub fn new(
        kind: Kind,
        namespace: Option<String>,
        field_selector: Option<&str>,
    ) -> Option<Self> {
        let name = match field_selector.map(str::trim).filter(|f| !f.is_empty()) {
            None => None,
            Some(selector) => {
                let value = selector
                    .strip_prefix("metadata.name==")
                    .or_else(|| selector.strip_prefix("metadata.name="))?;
                Some(value.to_owned())
            }
        };
        Some(Self {
            kind,
            namespace,
            name,
        })
    }

    pub fn matches_event(&self, event: &ObjectEvent) -> bool {
        self.matches(event.kind, &event.namespace, &event.object)
    }

    fn matches(&self, kind: Kind, namespace: &str, object: &Value) -> bool {
        kind == self.kind
            && self.namespace.as_deref().is_none_or(|ns| ns == namespace)
            && self
                .name
                .as_deref()
                .is_none_or(|name| object["metadata"]["name"].as_str() == Some(name))
    }
}

impl ObjectStore {
    /// The selected objects and the version they were read at.
    pub fn list(&self, selection: &Selection) -> (u64, Vec<Value>) {
        let items = self
            .objects
            .iter()
            .filter(|((kind, namespace, _), object)| selection.matches(*kind, namespace, object))
            .map(|(_, object)| object.clone())
            .collect();
        (self.resource_version, items)
    }

    /// Changes to the selected objects after `resource_version`, and a receiver for later ones (taken under
    /// the same lock, so nothing falls between them).
    pub fn watch_from(
        &self,
        selection: &Selection,
        resource_version: u64,
    ) -> (Vec<ObjectEvent>, broadcast::Receiver<ObjectBroadcast>) {
        let backlog = self
            .log
            .iter()
            .filter(|e| e.resource_version > resource_version)
            .filter(|e| selection.matches(e.kind, &e.namespace, &e.object))
            .cloned()
            .collect();
        (backlog, self.changes.subscribe())
    }

    /// Ends every open watch of stored objects.
    pub fn close_watches(&self) {
        let _ = self.changes.send(ObjectBroadcast::Close);
    }

    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    fn publish(&mut self, kind: Kind, namespace: &str, event_type: &'static str, object: &Value) {
        let event = ObjectEvent {
            kind,
            namespace: namespace.to_owned(),
            event_type,
            resource_version: self.resource_version,
            object: object.clone(),
        };
        self.log.push(event.clone());
        // No open watch is fine.
        let _ = self.changes.send(ObjectBroadcast::Event(event));
    }

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
        let event_type = if previous.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.publish(kind, namespace, event_type, &object);
        self.objects.insert(key, object);
        self.resource_version
    }

    pub fn delete(&mut self, kind: Kind, namespace: &str, name: &str) -> bool {
        let Some(mut object) = self
            .objects
            .remove(&(kind, namespace.to_owned(), name.to_owned()))
        else {
            return false;
        };
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        self.publish(kind, namespace, "DELETED", &object);
        true
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
                self.publish(kind, namespace, "ADDED", &object);
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
        self.publish(kind, &namespace, "MODIFIED", &object);
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
