//! The pod view read with [`Scanner`]: the fast path of every review. Each reader mirrors the
//! `Deserialize` of its type field for field (`null` handling, duplicate keys, which values are
//! skipped unchecked) and declines where that would fail or where it is unsure, so serde's reading
//! stays the reference: the tests compare the two on every input they accept.

use std::borrow::Cow;

use serde::de::IgnoredAny;

use super::{
    ContainerView, EnvVarView, Kept, KeptList, MetadataView, PodView, RawJson, SpecView, Str,
    StrMap, VolumeMountView, VolumeView, ANNOTATION_PREFIX, KEPT_ENV_PREFIX,
};
use crate::json_scan::Scanner;

/// The keys already read in one object: a derived `Deserialize` refuses a duplicate field.
#[derive(Default)]
pub(crate) struct Seen(u32);

impl Seen {
    /// Reads field number `field` with `read`, declining its second occurrence.
    pub(crate) fn read<'a, T>(
        &mut self,
        field: u32,
        s: &mut Scanner<'a>,
        read: impl FnOnce(&mut Scanner<'a>) -> Option<T>,
    ) -> Option<T> {
        let bit = 1 << field;
        if self.0 & bit != 0 {
            return None;
        }
        self.0 |= bit;
        read(s)
    }
}

/// A string without escapes, borrowed.
pub(crate) fn str<'a>(s: &mut Scanner<'a>) -> Option<Str<'a>> {
    s.str().map(|v| Str(Cow::Borrowed(v)))
}

pub(crate) fn optional_str<'a>(s: &mut Scanner<'a>) -> Option<Option<Str<'a>>> {
    s.nullable(str)
}

fn raw<'a>(s: &mut Scanner<'a>) -> Option<Option<RawJson<'a>>> {
    s.nullable(|s| s.raw_value().map(RawJson::new))
}

impl<'a> PodView<'a> {
    /// The pod at the scanner, or `None` where serde's decoding must decide.
    pub(crate) fn scan(s: &mut Scanner<'a>) -> Option<Self> {
        let mut pod = PodView::default();
        let mut seen = Seen::default();
        s.object(|s, key| {
            match key {
                b"metadata" => {
                    pod.metadata = seen.read(0, s, |s| s.nullable(MetadataView::scan))?
                }
                b"spec" => pod.spec = seen.read(1, s, |s| s.nullable(SpecView::scan))?,
                _ => s.skip_value()?,
            }
            Some(())
        })?;
        Some(pod)
    }
}

impl<'a> MetadataView<'a> {
    fn scan(s: &mut Scanner<'a>) -> Option<Self> {
        let mut metadata = MetadataView::default();
        let mut seen = Seen::default();
        s.object(|s, key| {
            match key {
                b"name" => metadata.name = seen.read(0, s, optional_str)?,
                b"generateName" => metadata.generate_name = seen.read(1, s, optional_str)?,
                b"namespace" => metadata.namespace = seen.read(2, s, optional_str)?,
                b"annotations" => {
                    metadata.annotations = seen.read(3, s, |s| s.nullable(StrMap::scan))?
                }
                b"labels" => metadata.labels = seen.read(4, s, |s| s.nullable(StrMap::scan))?,
                _ => s.skip_value()?,
            }
            Some(())
        })?;
        Some(metadata)
    }
}

impl<'a> StrMap<'a> {
    fn scan(s: &mut Scanner<'a>) -> Option<Self> {
        let mut entries = Vec::new();
        s.object(|s, key| {
            if key.starts_with(ANNOTATION_PREFIX.as_bytes()) {
                let key = std::str::from_utf8(key).ok()?;
                entries.push((Str(Cow::Borrowed(key)), str(s)?));
            } else {
                s.skip_value()?;
            }
            Some(())
        })?;
        Some(StrMap(entries))
    }
}

impl<'a> SpecView<'a> {
    fn scan(s: &mut Scanner<'a>) -> Option<Self> {
        let mut spec = SpecView::default();
        let mut seen = Seen::default();
        s.object(|s, key| {
            match key {
                b"serviceAccountName" => {
                    spec.service_account_name = seen.read(0, s, optional_str)?
                }
                b"serviceAccount" => spec.service_account = seen.read(1, s, optional_str)?,
                b"hostNetwork" => {
                    spec.host_network = seen.read(2, s, |s| s.nullable(Scanner::bool))?
                }
                b"initContainers" => {
                    spec.init_containers =
                        seen.read(3, s, |s| s.nullable(|s| list(s, ContainerView::scan)))?
                }
                b"containers" => {
                    spec.containers =
                        seen.read(4, s, |s| s.nullable(|s| list(s, ContainerView::scan)))?
                }
                b"volumes" => {
                    spec.volumes = seen.read(5, s, |s| s.nullable(|s| list(s, VolumeView::scan)))?
                }
                _ => s.skip_value()?,
            }
            Some(())
        })?;
        Some(spec)
    }
}

fn list<'a, T>(
    s: &mut Scanner<'a>,
    mut read: impl FnMut(&mut Scanner<'a>) -> Option<T>,
) -> Option<Vec<T>> {
    let mut items = Vec::new();
    s.array(|s| {
        items.push(read(s)?);
        Some(())
    })?;
    Some(items)
}

impl<'a> ContainerView<'a> {
    fn scan(s: &mut Scanner<'a>) -> Option<Self> {
        let mut container = ContainerView::default();
        let mut seen = Seen::default();
        s.object(|s, key| {
            match key {
                b"name" => container.name = seen.read(0, s, str)?,
                b"env" => {
                    container.env = seen.read(1, s, |s| {
                        s.nullable(|s| KeptList::scan(s, EnvVarView::scan))
                    })?
                }
                b"volumeMounts" => {
                    container.volume_mounts = seen.read(2, s, |s| {
                        s.nullable(|s| KeptList::scan(s, |s| VolumeMountView::scan(s).map(Some)))
                    })?
                }
                b"ports" => container.ports = seen.read(3, s, raw)?,
                b"restartPolicy" => container.restart_policy = seen.read(4, s, optional_str)?,
                _ => s.skip_value()?,
            }
            Some(())
        })?;
        Some(container)
    }
}

impl<T> KeptList<T> {
    /// The list, reading each entry with `entry`, which gives `None` for one it skipped unread
    /// because it is not kept.
    fn scan<'a>(
        s: &mut Scanner<'a>,
        mut entry: impl FnMut(&mut Scanner<'a>) -> Option<Option<T>>,
    ) -> Option<Self>
    where
        T: Kept,
    {
        let mut list = KeptList::default();
        s.array(|s| {
            match entry(s)? {
                Some(entry) => list.push(entry),
                None => list.skip(),
            }
            Some(())
        })?;
        Some(list)
    }
}

impl<'a> EnvVarView<'a> {
    /// The entry if its name is `AZURE_*` (the only ones kept), like its `Deserialize`: a repeated
    /// key overwrites, and the value of a variable already named otherwise is skipped unread.
    fn scan(s: &mut Scanner<'a>) -> Option<Option<Self>> {
        let mut entry = EnvVarView::default();
        let mut name: Option<&'a [u8]> = None;
        let kept = |name: Option<&[u8]>| {
            name.unwrap_or_default()
                .starts_with(KEPT_ENV_PREFIX.as_bytes())
        };
        s.object(|s, key| {
            match key {
                b"name" => name = Some(s.bytes()?),
                b"value" if name.is_some() && !kept(name) => s.skip_value()?,
                b"value" => entry.value = optional_str(s)?,
                b"valueFrom" => {
                    entry.value_from = s.nullable(|s| s.skip_value().map(|()| IgnoredAny))?;
                }
                _ => s.skip_value()?,
            }
            Some(())
        })?;
        if !kept(name) {
            return Some(None);
        }
        let name = std::str::from_utf8(name.unwrap_or_default()).ok()?;
        entry.name = Str(Cow::Borrowed(name));
        Some(Some(entry))
    }
}

impl<'a> VolumeMountView<'a> {
    fn scan(s: &mut Scanner<'a>) -> Option<Self> {
        let mut mount = VolumeMountView::default();
        let mut seen = Seen::default();
        s.object(|s, key| {
            match key {
                b"name" => mount.name = seen.read(0, s, str)?,
                b"mountPath" => mount.mount_path = seen.read(1, s, str)?,
                b"readOnly" => mount.read_only = seen.read(2, s, |s| s.nullable(Scanner::bool))?,
                b"subPath" => mount.sub_path = seen.read(3, s, optional_str)?,
                _ => s.skip_value()?,
            }
            Some(())
        })?;
        Some(mount)
    }
}

impl<'a> VolumeView<'a> {
    fn scan(s: &mut Scanner<'a>) -> Option<Self> {
        let mut volume = VolumeView::default();
        let mut seen = Seen::default();
        s.object(|s, key| {
            match key {
                b"name" => volume.name = seen.read(0, s, str)?,
                b"projected" => volume.projected = seen.read(1, s, raw)?,
                _ => s.skip_value()?,
            }
            Some(())
        })?;
        Some(volume)
    }
}

#[cfg(test)]
mod tests;
