//! The in-memory index behind the service-account cache: plain data, changed only through `apply`,
//! `delete` and `replace`, so it is unit-tested without an API server.
//!
//! Nested maps (namespace → name → entry) rather than one map keyed by `(String, String)`: with the
//! nested form a lookup borrows `&str` keys and allocates nothing on the admission path.

use std::collections::HashMap;
use std::sync::Arc;

use crate::mutate::service_account::ServiceAccountMeta;

/// Service accounts by namespace and name.
#[derive(Debug, Default)]
pub(crate) struct Index {
    namespaces: HashMap<String, HashMap<String, Arc<ServiceAccountMeta>>>,
    len: usize,
}

impl Index {
    /// The entry for `namespace/name`, shared (an `Arc` clone, nothing else).
    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<Arc<ServiceAccountMeta>> {
        self.namespaces.get(namespace)?.get(name).cloned()
    }

    /// Inserts or replaces an entry (an added or modified service account).
    pub(crate) fn apply(&mut self, meta: ServiceAccountMeta) {
        let names = match self.namespaces.get_mut(meta.namespace.as_str()) {
            Some(names) => names,
            None => self.namespaces.entry(meta.namespace.clone()).or_default(),
        };
        if let Some(existing) = names.get_mut(meta.name.as_str()) {
            // Unchanged objects (every relist, most resyncs) keep their allocation.
            if **existing != meta {
                *existing = Arc::new(meta);
            }
            return;
        }
        names.insert(meta.name.clone(), Arc::new(meta));
        self.len += 1;
    }

    /// Removes an entry; empty namespaces are dropped so deleted namespaces leave nothing behind.
    pub(crate) fn delete(&mut self, namespace: &str, name: &str) {
        let Some(names) = self.namespaces.get_mut(namespace) else {
            return;
        };
        if names.remove(name).is_some() {
            self.len -= 1;
        }
        if names.is_empty() {
            self.namespaces.remove(namespace);
        }
    }

    /// Replaces the whole content with a fresh full list. Entries equal to the current ones keep
    /// the current `Arc`, so readers holding them and the allocator both see no churn.
    pub(crate) fn replace(&mut self, mut fresh: Index) {
        for (namespace, names) in &mut fresh.namespaces {
            let Some(current) = self.namespaces.get(namespace.as_str()) else {
                continue;
            };
            for (name, entry) in names.iter_mut() {
                if let Some(old) = current.get(name.as_str()) {
                    if **old == **entry {
                        *entry = old.clone();
                    }
                }
            }
        }
        *self = fresh;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(namespace: &str, name: &str, client_id: &str) -> ServiceAccountMeta {
        ServiceAccountMeta {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            annotations: [("client-id".to_owned(), client_id.to_owned())].into(),
        }
    }

    #[test]
    fn apply_inserts_and_replaces() {
        let mut index = Index::default();
        index.apply(meta("ns", "a", "1"));
        index.apply(meta("ns", "b", "1"));
        index.apply(meta("ns", "a", "2"));
        assert_eq!(index.len(), 2);
        let a = index.get("ns", "a").expect("present");
        assert_eq!(a.annotations.get("client-id"), Some("2"));
        assert!(index.get("other", "a").is_none());
    }

    #[test]
    fn unchanged_apply_keeps_the_same_allocation() {
        let mut index = Index::default();
        index.apply(meta("ns", "a", "1"));
        let before = index.get("ns", "a").expect("present");
        index.apply(meta("ns", "a", "1"));
        assert!(Arc::ptr_eq(
            &before,
            &index.get("ns", "a").expect("present")
        ));
    }

    #[test]
    fn delete_removes_entry_and_empty_namespace() {
        let mut index = Index::default();
        index.apply(meta("ns", "a", "1"));
        index.delete("ns", "missing");
        index.delete("absent", "a");
        assert_eq!(index.len(), 1);
        index.delete("ns", "a");
        assert_eq!(index.len(), 0);
        assert!(index.namespaces.is_empty());
    }

    #[test]
    fn replace_drops_unlisted_and_reuses_unchanged_entries() {
        let mut index = Index::default();
        index.apply(meta("ns", "kept", "1"));
        index.apply(meta("ns", "changed", "1"));
        index.apply(meta("ns", "gone", "1"));
        let kept = index.get("ns", "kept").expect("present");

        let mut fresh = Index::default();
        fresh.apply(meta("ns", "kept", "1"));
        fresh.apply(meta("ns", "changed", "2"));
        fresh.apply(meta("new", "added", "1"));
        index.replace(fresh);

        assert_eq!(index.len(), 3);
        assert!(Arc::ptr_eq(&kept, &index.get("ns", "kept").expect("kept")));
        assert_eq!(
            index
                .get("ns", "changed")
                .expect("changed")
                .annotations
                .get("client-id"),
            Some("2")
        );
        assert!(index.get("ns", "gone").is_none());
        assert!(index.get("new", "added").is_some());
    }
}
