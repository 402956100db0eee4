//! The part of a ServiceAccount the mutation reads: its name and its annotations.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::names::{
    CLIENT_ID_ANNOTATION, TENANT_ID_ANNOTATION, TOKEN_EXPIRATION_ANNOTATION,
};

/// The only part of a ServiceAccount the webhook reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceAccountMeta {
    pub namespace: String,
    pub name: String,
    pub annotations: Annotations,
}

/// A service account's annotations, sorted by key, in one exact-size allocation.
///
/// The cache holds one of these per service account in the cluster. A `BTreeMap<String, String>`
/// allocates a full 11-slot leaf (~540 bytes) even for one entry, which was most of the cache's
/// memory; a boxed slice costs 40 bytes an entry plus the value's text. The keys the mutation
/// reads are the same in every service account, so they point at one static copy instead of
/// ~60 heap bytes each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations(Box<[(Key, Box<str>)]>);

type Key = Cow<'static, str>;

/// Keys stored without an allocation of their own.
const SHARED_KEYS: [&str; 3] = [
    CLIENT_ID_ANNOTATION,
    TENANT_ID_ANNOTATION,
    TOKEN_EXPIRATION_ANNOTATION,
];

fn key(key: impl AsRef<str> + Into<Box<str>>) -> Key {
    match SHARED_KEYS.iter().find(|shared| **shared == key.as_ref()) {
        Some(shared) => Cow::Borrowed(shared),
        None => Cow::Owned(key.into().into_string()),
    }
}

impl Annotations {
    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        let found = self.0.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
        Some(&self.0[found].1)
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets `key` to `value`, replacing an existing value (rebuilds the slice: not for hot paths).
    pub fn insert(&mut self, key: impl AsRef<str> + Into<Box<str>>, value: impl Into<Box<str>>) {
        let mut entries = std::mem::take(&mut self.0).into_vec();
        entries.push((self::key(key), value.into()));
        *self = Self::from_entries(entries);
    }

    /// Keeps only the entries whose key starts with `prefix`.
    pub fn retain_prefix(&mut self, prefix: &str) {
        if self.iter().all(|(key, _)| key.starts_with(prefix)) {
            return;
        }
        let kept = std::mem::take(&mut self.0)
            .into_vec()
            .into_iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .collect();
        self.0 = kept;
    }
}

impl Annotations {
    /// Sorts by key; among equal keys the last one wins, as with inserting into a map.
    fn from_entries(mut entries: Vec<(Key, Box<str>)>) -> Self {
        // Stable, so equal keys keep their input order and the last is the latest.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut deduped: Vec<(Key, Box<str>)> = Vec::with_capacity(entries.len());
        for entry in entries {
            match deduped.last_mut() {
                Some(last) if last.0 == entry.0 => *last = entry,
                _ => deduped.push(entry),
            }
        }
        Self(deduped.into_boxed_slice())
    }
}

/// Later duplicates win, as with inserting into a map.
impl<K, V> FromIterator<(K, V)> for Annotations
where
    K: AsRef<str> + Into<Box<str>>,
    V: Into<Box<str>>,
{
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        Self::from_entries(
            entries
                .into_iter()
                .map(|(k, v)| (key(k), v.into()))
                .collect(),
        )
    }
}

impl From<BTreeMap<String, String>> for Annotations {
    fn from(map: BTreeMap<String, String>) -> Self {
        // Already sorted and unique: no re-sort needed.
        Self(map.into_iter().map(|(k, v)| (key(k), v.into())).collect())
    }
}

impl<K, V, const N: usize> From<[(K, V); N]> for Annotations
where
    K: AsRef<str> + Into<Box<str>>,
    V: Into<Box<str>>,
{
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn get_finds_keys_in_any_input_order() {
        let annotations: Annotations = [("b", "2"), ("a", "1"), ("c", "3")].into();
        assert_eq!(annotations.get("a"), Some("1"));
        assert_eq!(annotations.get("c"), Some("3"));
        assert_eq!(annotations.get("d"), None);
        let keys: Vec<&str> = annotations.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[test]
    fn later_duplicates_win() {
        let annotations: Annotations = [("k", "first"), ("j", "x"), ("k", "second")].into();
        assert_eq!(annotations.len(), 2);
        assert_eq!(annotations.get("k"), Some("second"));
    }

    #[test]
    fn from_map_keeps_every_entry() {
        let map = BTreeMap::from([
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), String::new()),
        ]);
        let annotations = Annotations::from(map);
        assert_eq!(annotations.get("b"), Some(""));
        assert_eq!(annotations.len(), 2);
    }

    #[test]
    fn known_keys_share_one_static_copy() {
        let annotations: Annotations = [
            (CLIENT_ID_ANNOTATION.to_owned(), "c".to_owned()),
            ("azure.workload.identity/other".to_owned(), "o".to_owned()),
        ]
        .into();
        let keys: Vec<bool> = annotations
            .0
            .iter()
            .map(|(k, _)| matches!(k, Cow::Borrowed(_)))
            .collect();
        assert_eq!(keys, [true, false]);
        assert_eq!(annotations.get(CLIENT_ID_ANNOTATION), Some("c"));
        assert_eq!(annotations.get("azure.workload.identity/other"), Some("o"));
    }

    #[test]
    fn retain_prefix_drops_other_keys() {
        let mut annotations: Annotations = [
            ("azure.workload.identity/client-id", "c"),
            ("kubectl.kubernetes.io/last-applied-configuration", "{}"),
            ("azure.workload.identity/tenant-id", "t"),
        ]
        .into();
        annotations.retain_prefix("azure.workload.identity/");
        let keys: Vec<&str> = annotations.iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "azure.workload.identity/client-id",
                "azure.workload.identity/tenant-id"
            ]
        );
    }
}
