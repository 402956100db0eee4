//! A minimal, borrowed view of the pod: only the fields the mutation reads. Everything else in the
//! request object is never decoded, so it can never be dropped or rewritten.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

pub(crate) mod scan;

use super::names::{ANNOTATION_PREFIX, MOUNT_PATH, VOLUME_NAME_PREFIX};
use super::ContainerGroup;

/// A string borrowed from the request body when it has no escapes, owned otherwise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Str<'a>(pub Cow<'a, str>);

impl Str<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// A JSON value kept as its text, borrowed from the request body, for the parts read only on
/// demand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawJson<'a>(&'a str);

impl<'a> RawJson<'a> {
    /// Wraps text that is one JSON value.
    pub(crate) fn new(text: &'a str) -> Self {
        RawJson(text)
    }

    pub fn get(&self) -> &'a str {
        self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawJson<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&'de RawValue>::deserialize(deserializer).map(|raw| RawJson(raw.get()))
    }
}

/// The `azure.workload.identity/` entries of a `map[string]string` (annotations, labels), in request
/// order: the webhook reads no other key, and other values (often large) are skipped unvalidated.
/// A handful of entries, so a linear scan beats hashing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrMap<'a>(pub Vec<(Str<'a>, Str<'a>)>);

impl StrMap<'_> {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v.as_str())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for StrMap<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;
        impl<'de> Visitor<'de> for MapVisitor {
            type Value = StrMap<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings to strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    if key.as_str().starts_with(ANNOTATION_PREFIX) {
                        entries.push((key, map.next_value::<Str<'de>>()?));
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(StrMap(entries))
            }
        }
        deserializer.deserialize_map(MapVisitor)
    }
}

/// The pod, as far as the mutation is concerned. `null` is treated like an absent field.
#[derive(Debug, Default, Deserialize)]
pub struct PodView<'a> {
    #[serde(borrow, default)]
    pub metadata: Option<MetadataView<'a>>,
    #[serde(borrow, default)]
    pub spec: Option<SpecView<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataView<'a> {
    #[serde(borrow, default)]
    pub name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub generate_name: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub namespace: Option<Str<'a>>,
    #[serde(borrow, default)]
    pub annotations: Option<StrMap<'a>>,
    #[serde(borrow, default)]
    pub labels: Option<StrMap<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpecView<'a> {
    #[serde(borrow, default)]
    pub service_account_name: Option<Str<'a>>,
    /// The deprecated alias of `serviceAccountName`, which the API server still honours.
    #[serde(borrow, default)]
    pub service_account: Option<Str<'a>>,
    #[serde(default)]
    pub host_network: Option<bool>,
    #[serde(borrow, default)]
    pub init_containers: Option<Vec<ContainerView<'a>>>,
    #[serde(borrow, default)]
    pub containers: Option<Vec<ContainerView<'a>>>,
    #[serde(borrow, default)]
    pub volumes: Option<Vec<VolumeView<'a>>>,
}

/// The service account a pod runs as: `serviceAccountName`, else the deprecated `serviceAccount`
/// (the API server copies one into the other when only it is set), else `default`.
pub fn effective_service_account<'s>(
    name: Option<&'s str>,
    deprecated: Option<&'s str>,
) -> &'s str {
    [name, deprecated]
        .into_iter()
        .flatten()
        .find(|n| !n.is_empty())
        .unwrap_or("default")
}

impl<'a> SpecView<'a> {
    /// The containers of one list; none when the list is absent.
    pub fn containers_of(&self, group: ContainerGroup) -> &[ContainerView<'a>] {
        let list = match group {
            ContainerGroup::Init => &self.init_containers,
            ContainerGroup::App => &self.containers,
        };
        list.as_deref().unwrap_or_default()
    }

    /// Init and app containers together.
    pub fn container_count(&self) -> usize {
        self.containers_of(ContainerGroup::Init).len()
            + self.containers_of(ContainerGroup::App).len()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerView<'a> {
    #[serde(borrow, default)]
    pub name: Str<'a>,
    #[serde(borrow, default)]
    pub env: Option<EnvList<'a>>,
    #[serde(borrow, default)]
    pub volume_mounts: Option<MountList<'a>>,
    /// Kept raw: only a pod that asks for the proxy sidecar has its ports compared, so only then
    /// are they parsed (see [`ContainerView::ports`]).
    #[serde(borrow, default)]
    pub ports: Option<RawJson<'a>>,
    /// `Always` on an init container makes it a sidecar that keeps running beside the others.
    #[serde(borrow, default)]
    pub restart_policy: Option<Str<'a>>,
}

impl ContainerView<'_> {
    /// An init container with `restartPolicy: Always` (a native sidecar).
    pub fn keeps_running(&self) -> bool {
        self.restart_policy.as_ref().map(Str::as_str) == Some("Always")
    }
}

impl<'a> ContainerView<'a> {
    /// The declared ports, parsed from the raw list on demand; absent or `null` is no ports.
    pub fn ports(&self) -> Result<Vec<PortView<'a>>, serde_json::Error> {
        match self.ports {
            Some(raw) => serde_json::from_str(raw.get()),
            None => Ok(Vec::new()),
        }
    }
}

/// One entry of a container's `ports`: only what tells which port it takes, and whether TCP.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortView<'a> {
    /// Wider than a port: the API server validates the range only after admission.
    #[serde(default)]
    pub container_port: Option<i64>,
    #[serde(borrow, default)]
    pub protocol: Option<Str<'a>>,
}

impl PortView<'_> {
    /// Anything but UDP and SCTP counts: the API server defaults an absent protocol to TCP, and
    /// refuses unknown ones after admission anyway.
    pub fn is_tcp(&self) -> bool {
        !matches!(
            self.protocol.as_ref().map(Str::as_str),
            Some("UDP" | "SCTP")
        )
    }
}

/// A container list the webhook reads only a few entries of (`env`, `volumeMounts`): it keeps
/// those, with their index in the whole list, and counts the others without storing them. Pods
/// often carry long env lists, and every pod has at least the API server's token mount.
#[derive(Debug)]
pub struct KeptList<T> {
    len: usize,
    kept: Vec<(usize, T)>,
}

/// Which entries of a [`KeptList`] the webhook reads.
pub trait Kept {
    fn kept(&self) -> bool;
}

/// A container's `env`: the `AZURE_*` entries, as every variable the webhook injects or reads has
/// that prefix.
pub type EnvList<'a> = KeptList<EnvVarView<'a>>;

/// A container's `volumeMounts`: those the webhook's own mount can meet, at the token's mount path
/// or of a reserved volume (whose name has the reserved prefix, as the webhook's own volume's has).
pub type MountList<'a> = KeptList<VolumeMountView<'a>>;

/// The prefix of every env var the webhook injects or reads.
const KEPT_ENV_PREFIX: &str = "AZURE_";

impl Kept for EnvVarView<'_> {
    fn kept(&self) -> bool {
        self.name.as_str().starts_with(KEPT_ENV_PREFIX)
    }
}

impl Kept for VolumeMountView<'_> {
    fn kept(&self) -> bool {
        self.mount_path.as_str() == MOUNT_PATH || self.name.as_str().starts_with(VOLUME_NAME_PREFIX)
    }
}

impl<T> Default for KeptList<T> {
    fn default() -> Self {
        KeptList {
            len: 0,
            kept: Vec::new(),
        }
    }
}

impl<T: Kept> KeptList<T> {
    /// Appends the next entry, storing it only if it is kept.
    pub(crate) fn push(&mut self, entry: T) {
        if entry.kept() {
            self.kept.push((self.len, entry));
        }
        self.len += 1;
    }
}

impl<T> KeptList<T> {
    /// Counts an entry known not to be kept, which was skipped unread.
    pub(crate) fn skip(&mut self) {
        self.len += 1;
    }

    /// The kept entries `matches` accepts, with their list index. No entry that is not kept can
    /// match: `matches` must accept only entries of the kind the list keeps.
    pub fn matching<'s>(
        &'s self,
        matches: impl Fn(&T) -> bool + 's,
    ) -> impl Iterator<Item = (usize, &'s T)> + 's {
        self.kept
            .iter()
            .filter(move |(_, entry)| matches(entry))
            .map(|(index, entry)| (*index, entry))
    }
}

impl<'a> EnvList<'a> {
    /// The entries named `name` (which must start with `AZURE_`), with their list index.
    pub fn named<'s>(
        &'s self,
        name: &'s str,
    ) -> impl Iterator<Item = (usize, &'s EnvVarView<'a>)> + 's {
        self.matching(move |e| e.name.as_str() == name)
    }

    /// The first entry named `name` (which must start with `AZURE_`), with its list index.
    pub fn first<'s>(&'s self, name: &'s str) -> Option<(usize, &'s EnvVarView<'a>)> {
        self.named(name).next()
    }
}

impl<'de, T: Kept + Deserialize<'de>> Deserialize<'de> for KeptList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Kept + Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
            type Value = KeptList<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut list = KeptList::default();
                while let Some(entry) = seq.next_element::<T>()? {
                    list.push(entry);
                }
                Ok(list)
            }
        }
        deserializer.deserialize_seq(ListVisitor(std::marker::PhantomData))
    }
}

#[derive(Debug, Default)]
pub struct EnvVarView<'a> {
    pub name: Str<'a>,
    pub value: Option<Str<'a>>,
    pub value_from: Option<IgnoredAny>,
}

impl EnvVarView<'_> {
    /// The literal `value`, if the entry has one.
    pub fn value(&self) -> Option<&str> {
        self.value.as_ref().map(Str::as_str)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for EnvVarView<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = EnvVarView<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an env var")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entry = EnvVarView::default();
                let mut named = false;
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match key.as_str() {
                        "name" => {
                            entry.name = map.next_value()?;
                            named = true;
                        }
                        // The API server writes the name first: values of variables the webhook
                        // never reads are skipped without being decoded.
                        "value" if named && !entry.kept() => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        "value" => entry.value = map.next_value()?,
                        "valueFrom" => entry.value_from = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(entry)
            }
        }
        deserializer.deserialize_map(EntryVisitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMountView<'a> {
    #[serde(borrow, default)]
    pub name: Str<'a>,
    #[serde(borrow, default)]
    pub mount_path: Str<'a>,
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(borrow, default)]
    pub sub_path: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct VolumeView<'a> {
    #[serde(borrow, default)]
    pub name: Str<'a>,
    /// Kept raw: only the webhook's own volume is ever compared, so only it gets parsed.
    #[serde(borrow, default)]
    pub projected: Option<RawJson<'a>>,
}

impl<'a> PodView<'a> {
    pub fn from_json(raw: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(raw)
    }

    pub fn annotations(&self) -> Option<&StrMap<'a>> {
        self.metadata.as_ref()?.annotations.as_ref()
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations()?.get(key)
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.metadata.as_ref()?.labels.as_ref()?.get(key)
    }

    /// The name the volume is derived from: `metadata.name`, else `<generateName> (prefix)`, as upstream.
    pub fn name_for_volume(&self) -> Cow<'_, str> {
        let metadata = self.metadata.as_ref();
        match metadata.and_then(|m| m.name.as_ref()).map(Str::as_str) {
            Some(name) if !name.is_empty() => Cow::Borrowed(name),
            _ => {
                let prefix = metadata
                    .and_then(|m| m.generate_name.as_ref())
                    .map(Str::as_str)
                    .unwrap_or("");
                Cow::Owned(format!("{prefix} (prefix)"))
            }
        }
    }

    /// `metadata.name`, else `metadata.generateName`: what logs and messages call the pod.
    pub fn display_name(&self) -> &str {
        let metadata = self.metadata.as_ref();
        metadata
            .and_then(|m| m.name.as_ref())
            .filter(|n| !n.as_str().is_empty())
            .or_else(|| metadata.and_then(|m| m.generate_name.as_ref()))
            .map(Str::as_str)
            .unwrap_or("")
    }

    /// See [`effective_service_account`].
    pub fn service_account_name(&self) -> &str {
        let spec = self.spec.as_ref();
        effective_service_account(
            spec.and_then(|s| s.service_account_name.as_ref().map(Str::as_str)),
            spec.and_then(|s| s.service_account.as_ref().map(Str::as_str)),
        )
    }
}
