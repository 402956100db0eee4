//! The pod view read with [`Scanner`]: the fast path of every review. Each reader mirrors the
//! `Deserialize` of its type field for field (`null` handling, duplicate keys, which values are
//! skipped unchecked) and declines where that would fail or where it is unsure, so serde's reading
//! stays the reference: the tests compare the two on every input they accept.

use std::borrow::Cow;

use serde::de::IgnoredAny;

use super::{
    ContainerView, EnvList, EnvVarView, MetadataView, PodView, RawJson, SpecView, Str, StrMap,
    VolumeMountView, VolumeView, ANNOTATION_PREFIX, KEPT_ENV_PREFIX,
};
use crate::json_scan::Scanner;

/// The keys already read in one object: a derived `Deserialize` refuses a duplicate field.
#[derive(Default)]
pub(crate) struct Seen(u32);

impl Seen {
    pub(crate) fn first(&mut self, field: u32) -> Option<()> {
        let bit = 1 << field;
        let fresh = self.0 & bit == 0;
        self.0 |= bit;
        fresh.then_some(())
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
                    seen.first(0)?;
                    pod.metadata = s.nullable(MetadataView::scan)?;
                }
                b"spec" => {
                    seen.first(1)?;
                    pod.spec = s.nullable(SpecView::scan)?;
                }
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
                b"name" => {
                    seen.first(0)?;
                    metadata.name = optional_str(s)?;
                }
                b"generateName" => {
                    seen.first(1)?;
                    metadata.generate_name = optional_str(s)?;
                }
                b"namespace" => {
                    seen.first(2)?;
                    metadata.namespace = optional_str(s)?;
                }
                b"annotations" => {
                    seen.first(3)?;
                    metadata.annotations = s.nullable(StrMap::scan)?;
                }
                b"labels" => {
                    seen.first(4)?;
                    metadata.labels = s.nullable(StrMap::scan)?;
                }
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
                    seen.first(0)?;
                    spec.service_account_name = optional_str(s)?;
                }
                b"serviceAccount" => {
                    seen.first(1)?;
                    spec.service_account = optional_str(s)?;
                }
                b"hostNetwork" => {
                    seen.first(2)?;
                    spec.host_network = s.nullable(Scanner::bool)?;
                }
                b"initContainers" => {
                    seen.first(3)?;
                    spec.init_containers = s.nullable(|s| list(s, ContainerView::scan))?;
                }
                b"containers" => {
                    seen.first(4)?;
                    spec.containers = s.nullable(|s| list(s, ContainerView::scan))?;
                }
                b"volumes" => {
                    seen.first(5)?;
                    spec.volumes = s.nullable(|s| list(s, VolumeView::scan))?;
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
                b"name" => {
                    seen.first(0)?;
                    container.name = str(s)?;
                }
                b"env" => {
                    seen.first(1)?;
                    container.env = s.nullable(EnvList::scan)?;
                }
                b"volumeMounts" => {
                    seen.first(2)?;
                    container.volume_mounts = s.nullable(|s| list(s, VolumeMountView::scan))?;
                }
                b"ports" => {
                    seen.first(3)?;
                    container.ports = raw(s)?;
                }
                b"restartPolicy" => {
                    seen.first(4)?;
                    container.restart_policy = optional_str(s)?;
                }
                _ => s.skip_value()?,
            }
            Some(())
        })?;
        Some(container)
    }
}

impl<'a> EnvList<'a> {
    fn scan(s: &mut Scanner<'a>) -> Option<Self> {
        let mut list = EnvList::default();
        s.array(|s| {
            if let Some(entry) = EnvVarView::scan(s)? {
                list.azure.push((list.len, entry));
            }
            list.len += 1;
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
                b"name" => {
                    seen.first(0)?;
                    mount.name = str(s)?;
                }
                b"mountPath" => {
                    seen.first(1)?;
                    mount.mount_path = str(s)?;
                }
                b"readOnly" => {
                    seen.first(2)?;
                    mount.read_only = s.nullable(Scanner::bool)?;
                }
                b"subPath" => {
                    seen.first(3)?;
                    mount.sub_path = optional_str(s)?;
                }
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
                b"name" => {
                    seen.first(0)?;
                    volume.name = str(s)?;
                }
                b"projected" => {
                    seen.first(1)?;
                    volume.projected = raw(s)?;
                }
                _ => s.skip_value()?,
            }
            Some(())
        })?;
        Some(volume)
    }
}

#[cfg(test)]
mod tests;
