//! The in-memory index behind the service-account cache: plain data, changed only through `apply`,
//! `delete` and `replace`, so it is unit-tested without an API server.
//!
//! Layout, for memory: most service accounts in a cluster carry no annotation the webhook reads, and
//! for those it only needs to know they exist. So per namespace (its name stored once) the index
//! keeps two sets:
//! - `bare`: the names of service accounts without annotations, packed ([`PackedNames`], about 30
//!   bytes for a 20-character name);
//! - `annotated`: the shared [`ServiceAccountMeta`] of the others, found by the name it holds (no
//!   second copy of the name as a key).
//!
//! A lookup borrows `&str` keys; an annotated hit is an `Arc` clone and allocates nothing. A bare hit
//! builds its `ServiceAccountMeta` (namespace and name, no annotations): three small allocations, on
//! a path that only pods whose service account lacks the annotations take.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, OnceLock};

use hashbrown::HashTable;

use super::names::PackedNames;
use crate::mutate::service_account::ServiceAccountMeta;

/// Service accounts by namespace and name.
#[derive(Debug, Default)]
pub(crate) struct Index {
    namespaces: HashMap<Box<str>, Namespace>,
    len: usize,
}

/// The service accounts of one namespace.
#[derive(Debug, Default)]
struct Namespace {
    bare: PackedNames,
    annotated: HashTable<Arc<ServiceAccountMeta>>,
}

/// Hashes names in every namespace's tables. One random seed for the process, so that a relist's
/// fresh index can take over the current one's tables as they are.
fn hasher() -> &'static RandomState {
    static HASHER: OnceLock<RandomState> = OnceLock::new();
    HASHER.get_or_init(RandomState::new)
}

impl Index {
    /// The entry for `namespace/name`: shared for an annotated one, built for a bare one.
    pub(crate) fn get(&self, namespace: &str, name: &str) -> Option<Arc<ServiceAccountMeta>> {
        let accounts = self.namespaces.get(namespace)?;
        if let Some(meta) = accounts.annotated(name) {
            return Some(meta.clone());
        }
        accounts
            .bare
            .contains(hasher(), name)
            .then(|| Arc::new(bare_meta(namespace, name)))
    }

    /// Inserts or replaces an entry (an added or modified service account).
    pub(crate) fn apply(&mut self, meta: ServiceAccountMeta) {
        let accounts = match self.namespaces.get_mut(meta.namespace.as_str()) {
            Some(accounts) => accounts,
            None => self
                .namespaces
                .entry(meta.namespace.as_str().into())
                .or_default(),
        };
        if accounts.set(meta) {
            self.len += 1;
        }
    }

    /// Removes an entry; empty namespaces are dropped so deleted namespaces leave nothing behind.
    pub(crate) fn delete(&mut self, namespace: &str, name: &str) {
        let Some(accounts) = self.namespaces.get_mut(namespace) else {
            return;
        };
        if accounts.remove(name) {
            self.len -= 1;
        }
        if accounts.is_empty() {
            self.namespaces.remove(namespace);
        }
    }

    /// Replaces the whole content with a fresh full list. Entries equal to the current ones keep
    /// the current `Arc`, and namespaces whose bare names are unchanged keep the current set, so
    /// readers holding entries and the allocator both see no churn. The fresh sets give back the
    /// room they grew into while the list came in.
    pub(crate) fn replace(&mut self, mut fresh: Index) {
        for (namespace, accounts) in &mut fresh.namespaces {
            match self.namespaces.get_mut(namespace) {
                Some(current) => accounts.keep_unchanged(current),
                None => accounts.bare.compact(hasher()),
            }
        }
        *self = fresh;
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Namespace {
    fn annotated(&self, name: &str) -> Option<&Arc<ServiceAccountMeta>> {
        self.annotated
            .find(hasher().hash_one(name), |meta| meta.name == name)
    }

    /// Stores `meta` in the set its annotations call for, moving it out of the other; true if the
    /// name is new to the namespace.
    fn set(&mut self, meta: ServiceAccountMeta) -> bool {
        let hasher = hasher();
        let hash = hasher.hash_one(meta.name.as_str());
        if meta.annotations.is_empty() {
            match self.bare.insert(hasher, &meta.name) {
                Ok(false) => return false,
                Ok(true) => return self.remove_annotated(hash, &meta.name).is_none(),
                // Kept as an annotated entry instead: correct, only larger.
                Err(_) => {}
            }
        }
        let name_was_bare = self.bare.remove(hasher, &meta.name);
        match self.annotated.find_mut(hash, |old| old.name == meta.name) {
            Some(existing) => {
                // Unchanged objects (every relist, most resyncs) keep their allocation.
                if **existing != meta {
                    *existing = Arc::new(meta);
                }
                false
            }
            None => {
                self.annotated.insert_unique(hash, Arc::new(meta), |meta| {
                    hasher.hash_one(meta.name.as_str())
                });
                !name_was_bare
            }
        }
    }

    /// True if `name` was there.
    fn remove(&mut self, name: &str) -> bool {
        let hasher = hasher();
        self.bare.remove(hasher, name)
            || self.remove_annotated(hasher.hash_one(name), name).is_some()
    }

    fn remove_annotated(&mut self, hash: u64, name: &str) -> Option<Arc<ServiceAccountMeta>> {
        let entry = self
            .annotated
            .find_entry(hash, |meta| meta.name == name)
            .ok()?;
        Some(entry.remove().0)
    }

    fn is_empty(&self) -> bool {
        self.bare.is_empty() && self.annotated.is_empty()
    }

    /// Takes over from `current` what is equal to this fresh content: its `Arc`s, and its bare set
    /// when that has the same names.
    fn keep_unchanged(&mut self, current: &mut Namespace) {
        let hasher = hasher();
        let same_bare = self.bare.len() == current.bare.len()
            && self
                .bare
                .iter()
                .all(|name| current.bare.contains(hasher, name));
        if same_bare {
            std::mem::swap(&mut self.bare, &mut current.bare);
        } else {
            self.bare.compact(hasher);
        }
        for entry in self.annotated.iter_mut() {
            if let Some(old) = current.annotated(&entry.name) {
                if **old == **entry {
                    *entry = old.clone();
                }
            }
        }
    }
}

/// What a lookup of a service account without annotations answers.
fn bare_meta(namespace: &str, name: &str) -> ServiceAccountMeta {
    ServiceAccountMeta {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        annotations: Default::default(),
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
    fn bare_entries_are_found_with_their_names_and_no_annotations() {
        let mut index = Index::default();
        index.apply(bare_meta("ns", "default"));
        index.apply(bare_meta("ns", "default"));
        index.apply(bare_meta("other", "default"));
        assert_eq!(index.len(), 2);
        let found = index.get("ns", "default").expect("present");
        assert_eq!(*found, bare_meta("ns", "default"));
        assert!(index.get("ns", "missing").is_none());
        assert!(index.get("absent", "default").is_none());
    }

    #[test]
    fn an_entry_moves_between_bare_and_annotated_and_counts_once() {
        let mut index = Index::default();
        index.apply(bare_meta("ns", "a"));
        index.apply(meta("ns", "a", "1"));
        assert_eq!(index.len(), 1);
        assert_eq!(
            index
                .get("ns", "a")
                .expect("a")
                .annotations
                .get("client-id"),
            Some("1")
        );
        index.apply(bare_meta("ns", "a"));
        assert_eq!(index.len(), 1);
        assert!(index.get("ns", "a").expect("a").annotations.is_empty());
        index.delete("ns", "a");
        assert_eq!(index.len(), 0);
        assert!(index.namespaces.is_empty());
    }

    #[test]
    fn names_too_long_to_pack_are_kept_as_entries() {
        let mut index = Index::default();
        let long = "n".repeat(300);
        index.apply(bare_meta("ns", &long));
        assert_eq!(index.len(), 1);
        assert_eq!(
            *index.get("ns", &long).expect("present"),
            bare_meta("ns", &long)
        );
        index.delete("ns", &long);
        assert_eq!(index.len(), 0);
    }

    #[test]
    fn replace_keeps_an_unchanged_bare_set_and_takes_a_changed_one() {
        let mut index = Index::default();
        for name in ["a", "b"] {
            index.apply(bare_meta("same", name));
            index.apply(bare_meta("changed", name));
        }
        let before = index.namespaces["same"].bare.buffer_address();

        let mut fresh = Index::default();
        for name in ["b", "a"] {
            fresh.apply(bare_meta("same", name));
        }
        fresh.apply(bare_meta("changed", "a"));
        fresh.apply(bare_meta("changed", "c"));
        index.replace(fresh);

        assert_eq!(index.namespaces["same"].bare.buffer_address(), before);
        assert_eq!(index.len(), 4);
        assert!(index.get("same", "a").is_some() && index.get("same", "b").is_some());
        assert!(index.get("changed", "b").is_none());
        assert!(index.get("changed", "c").is_some());
    }

    /// Random operations against a plain map of what should be there.
    #[test]
    fn matches_a_simple_model_under_random_changes() {
        use std::collections::BTreeMap;

        let mut rng = fastrand::Rng::with_seed(15);
        let mut index = Index::default();
        let mut model: BTreeMap<(String, String), ServiceAccountMeta> = BTreeMap::new();
        for step in 0..5_000 {
            let namespace = format!("ns-{}", rng.usize(..3));
            let name = format!("sa-{}", rng.usize(..40));
            match rng.usize(..10) {
                0..=3 => {
                    let meta = bare_meta(&namespace, &name);
                    model.insert((namespace, name), meta.clone());
                    index.apply(meta);
                }
                4..=6 => {
                    let meta = meta(&namespace, &name, &rng.usize(..3).to_string());
                    model.insert((namespace, name), meta.clone());
                    index.apply(meta);
                }
                7..=8 => {
                    index.delete(&namespace, &name);
                    model.remove(&(namespace, name));
                }
                _ => {
                    let mut fresh = Index::default();
                    for meta in model.values() {
                        fresh.apply(meta.clone());
                    }
                    index.replace(fresh);
                }
            }
            assert_eq!(index.len(), model.len(), "step {step}");
            for n in 0..3 {
                for s in 0..40 {
                    let (namespace, name) = (format!("ns-{n}"), format!("sa-{s}"));
                    let found = index.get(&namespace, &name);
                    let expected = model.get(&(namespace.clone(), name.clone()));
                    assert_eq!(
                        found.as_ref().map(|m| &m.annotations),
                        expected.map(|m| &m.annotations),
                        "step {step}: {namespace}/{name}"
                    );
                    if let Some(found) = found {
                        assert_eq!((&*found.namespace, &*found.name), (&*namespace, &*name));
                    }
                }
            }
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
