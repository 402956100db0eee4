//! A set of names packed into one byte buffer: what the cache keeps of a service account that has no
//! annotation the webhook reads (most of them), whose only use is to say that it exists.
//!
//! One `Box<str>` per name would cost a 32-byte allocator chunk for a 20-character name plus a
//! 16-byte pointer and length in a hash table. Here a name costs its bytes plus one length byte in
//! `text`, and a 4-byte offset (plus one control byte) in the table: about 30 bytes for 20
//! characters, in two allocations per namespace instead of one per name.

use std::hash::BuildHasher;

use hashbrown::HashTable;

/// Longest name stored here; the length is one byte. Kubernetes object names are at most 253.
const MAX_NAME_LEN: usize = u8::MAX as usize;

/// Names, each stored as a length byte and its bytes in `text`, found by hash through `slots`.
#[derive(Debug, Default)]
pub(super) struct PackedNames {
    text: Vec<u8>,
    /// Offsets into `text` of the live names.
    slots: HashTable<u32>,
    /// Bytes of `text` taken by removed names, reclaimed by [`Self::compact`].
    dead: usize,
}

/// Why a name could not be stored (the caller keeps it another way).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Unpackable {
    /// Over [`MAX_NAME_LEN`] bytes.
    TooLong,
    /// The buffer would pass 4 GiB, beyond what a `u32` offset reaches.
    Full,
}

impl PackedNames {
    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub(super) fn contains(&self, hasher: &impl BuildHasher, name: &str) -> bool {
        let text = &self.text;
        self.slots
            .find(hash(hasher, name), |&at| {
                bytes_at(text, at) == name.as_bytes()
            })
            .is_some()
    }

    /// Adds `name`; true if it was not there yet.
    pub(super) fn insert(
        &mut self,
        hasher: &impl BuildHasher,
        name: &str,
    ) -> Result<bool, Unpackable> {
        if self.contains(hasher, name) {
            return Ok(false);
        }
        if name.len() > MAX_NAME_LEN {
            return Err(Unpackable::TooLong);
        }
        let at = u32::try_from(self.text.len()).map_err(|_| Unpackable::Full)?;
        if u32::try_from(self.text.len() + 1 + name.len()).is_err() {
            return Err(Unpackable::Full);
        }
        // Fits in the length byte: checked above.
        self.text.push(name.len() as u8);
        self.text.extend_from_slice(name.as_bytes());
        let text = &self.text;
        self.slots.insert_unique(hash(hasher, name), at, |&at| {
            hasher.hash_one(bytes_at(text, at))
        });
        Ok(true)
    }

    /// Removes `name`; true if it was there. Its bytes are reclaimed once removed names take more
    /// room than live ones.
    pub(super) fn remove(&mut self, hasher: &impl BuildHasher, name: &str) -> bool {
        let text = &self.text;
        let Ok(slot) = self.slots.find_entry(hash(hasher, name), |&at| {
            bytes_at(text, at) == name.as_bytes()
        }) else {
            return false;
        };
        slot.remove();
        self.dead += 1 + name.len();
        if self.dead > self.text.len() / 2 {
            self.compact(hasher);
        }
        true
    }

    /// Rewrites `text` with the live names only, and gives back the spare capacity of both buffers.
    pub(super) fn compact(&mut self, hasher: &impl BuildHasher) {
        if self.dead > 0 {
            let mut text = Vec::with_capacity(self.text.len() - self.dead);
            for at in self.slots.iter_mut() {
                let start = *at as usize;
                let end = start + 1 + usize::from(self.text[start]);
                // Fits: the live names took less room than this in the old buffer.
                *at = text.len() as u32;
                text.extend_from_slice(&self.text[start..end]);
            }
            self.text = text;
            self.dead = 0;
        }
        self.text.shrink_to_fit();
        let text = &self.text;
        self.slots
            .shrink_to_fit(|&at| hasher.hash_one(bytes_at(text, at)));
    }

    /// The names, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|&at| name_at(&self.text, at))
    }

    /// Where the names live, to tell whether a set was kept or rebuilt.
    #[cfg(test)]
    pub(super) fn buffer_address(&self) -> *const u8 {
        self.text.as_ptr()
    }

    /// Heap bytes held (capacity, not length), for tests and measurements.
    #[cfg(test)]
    pub(super) fn heap_bytes(&self) -> usize {
        self.text.capacity() + self.slots.capacity() * (std::mem::size_of::<u32>() + 1)
    }
}

/// Names are hashed as bytes, the form the table reads back from `text`.
fn hash(hasher: &impl BuildHasher, name: &str) -> u64 {
    hasher.hash_one(name.as_bytes())
}

fn bytes_at(text: &[u8], at: u32) -> &[u8] {
    let start = at as usize + 1;
    &text[start..start + usize::from(text[at as usize])]
}

fn name_at(text: &[u8], at: u32) -> &str {
    // Only whole `&str`s are copied into `text`, at the offsets recorded in the table.
    std::str::from_utf8(bytes_at(text, at)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::hash::RandomState;

    use super::*;

    fn sorted(names: &PackedNames) -> Vec<&str> {
        let set: BTreeSet<&str> = names.iter().collect();
        set.into_iter().collect()
    }

    #[test]
    fn insert_contains_remove() {
        let hasher = RandomState::new();
        let mut names = PackedNames::default();
        assert_eq!(names.insert(&hasher, "default"), Ok(true));
        assert_eq!(names.insert(&hasher, "builder"), Ok(true));
        assert_eq!(names.insert(&hasher, "default"), Ok(false));
        assert_eq!(names.len(), 2);
        assert!(names.contains(&hasher, "default"));
        assert!(!names.contains(&hasher, "defaul"));
        assert!(names.remove(&hasher, "default"));
        assert!(!names.remove(&hasher, "default"));
        assert!(!names.contains(&hasher, "default"));
        assert_eq!(sorted(&names), ["builder"]);
    }

    #[test]
    fn empty_and_multibyte_names_round_trip() {
        let hasher = RandomState::new();
        let mut names = PackedNames::default();
        for name in ["", "é", "a"] {
            assert_eq!(names.insert(&hasher, name), Ok(true));
        }
        assert_eq!(sorted(&names), ["", "a", "é"]);
        assert!(names.contains(&hasher, ""));
    }

    #[test]
    fn too_long_names_are_refused() {
        let hasher = RandomState::new();
        let mut names = PackedNames::default();
        let longest = "x".repeat(MAX_NAME_LEN);
        assert_eq!(names.insert(&hasher, &longest), Ok(true));
        let too_long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(names.insert(&hasher, &too_long), Err(Unpackable::TooLong));
        assert!(!names.contains(&hasher, &too_long));
        assert!(names.contains(&hasher, &longest));
    }

    #[test]
    fn removals_are_reclaimed_and_the_rest_stays_findable() {
        let hasher = RandomState::new();
        let mut names = PackedNames::default();
        let all: Vec<String> = (0..1000).map(|i| format!("svc-account-{i:08}")).collect();
        for name in &all {
            assert_eq!(names.insert(&hasher, name), Ok(true));
        }
        let full = names.text.len();
        for name in all.iter().filter(|name| !name.ends_with('7')) {
            assert!(names.remove(&hasher, name));
        }
        assert_eq!(names.len(), 100);
        // Compacted along the way: never more dead bytes than live ones, and far below the peak.
        assert!(names.dead <= names.text.len() / 2 + 1 + 20);
        assert!(
            names.text.len() < full / 4,
            "{} of {full}",
            names.text.len()
        );
        for name in &all {
            assert_eq!(names.contains(&hasher, name), name.ends_with('7'), "{name}");
        }
    }

    #[test]
    fn compact_keeps_every_name_and_trims_capacity() {
        let hasher = RandomState::new();
        let mut names = PackedNames::default();
        for i in 0..100 {
            names
                .insert(&hasher, &format!("svc-account-{i:08}"))
                .expect("short name");
        }
        names.remove(&hasher, "svc-account-00000042");
        names.compact(&hasher);
        assert_eq!(names.dead, 0);
        assert_eq!(names.text.len(), 99 * 21);
        assert_eq!(names.text.capacity(), names.text.len());
        assert_eq!(names.len(), 99);
        assert!(!names.contains(&hasher, "svc-account-00000042"));
        assert!(names.contains(&hasher, "svc-account-00000099"));
        // 21 bytes of text and a 4-byte offset per name, plus the table's spare slots.
        assert!(names.heap_bytes() < 99 * 40, "{}", names.heap_bytes());
    }
}
