//! `--config-map FILE`: the webhook's `azure-wi-webhook-config` ConfigMap as the environment.
//!
//! Precedence: a key present in the ConfigMap's `data` wins, even when its value is empty (an empty value
//! means "not configured", as in the cluster). Keys the ConfigMap lacks fall back to the process
//! environment, so one can still be supplied on the command line (e.g. `AZURE_TENANT_ID` kept out of git).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::documents::{self, invalid, meta_str};
use super::InjectError;
use crate::config::EnvSource;

/// The ConfigMap the shipped manifests load with `envFrom`.
pub const CONFIG_MAP_NAME: &str = "azure-wi-webhook-config";

/// ConfigMap data first, then `fallback`.
pub struct ConfigMapEnv<'a> {
    pub data: BTreeMap<String, String>,
    pub fallback: &'a dyn EnvSource,
}

impl EnvSource for ConfigMapEnv<'_> {
    fn var(&self, name: &str) -> Option<String> {
        match self.data.get(name) {
            Some(value) => Some(value.clone()),
            None => self.fallback.var(name),
        }
    }
}

/// Reads the `data` of the ConfigMap in `path`: the one named [`CONFIG_MAP_NAME`], or the only
/// ConfigMap of the file.
pub fn load(path: &Path) -> Result<BTreeMap<String, String>, InjectError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| InjectError::Read {
        path: source.clone(),
        message: e.to_string(),
    })?;
    let parsed = documents::parse(&source, &text)?;
    let config_maps: Vec<_> = parsed
        .iter()
        .filter(|d| documents::group_kind(&d.value) == ("", "ConfigMap"))
        .collect();
    let chosen = config_maps
        .iter()
        .find(|d| meta_str(&d.value, "name") == Some(CONFIG_MAP_NAME))
        .or(match config_maps.as_slice() {
            [only] => Some(only),
            _ => None,
        })
        .ok_or_else(|| InjectError::ConfigMap {
            path: source.clone(),
            message: format!(
                "no ConfigMap named {CONFIG_MAP_NAME} (found {} ConfigMaps)",
                config_maps.len()
            ),
        })?;
    let mut data = BTreeMap::new();
    match chosen.value.get("data") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (key, value) in map {
                let Some(text) = value.as_str() else {
                    return Err(invalid(
                        chosen,
                        &format!("/data/{key}"),
                        format!(
                            "expected a string, found {} (quote the value)",
                            documents::type_name(value)
                        ),
                    ));
                };
                data.insert(key.clone(), text.to_owned());
            }
        }
        Some(other) => {
            return Err(invalid(
                chosen,
                "/data",
                format!("expected a mapping, found {}", documents::type_name(other)),
            ))
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_map_keys_win_and_absent_keys_fall_back() {
        let fallback: BTreeMap<&str, &str> = [("A", "env"), ("B", "env"), ("C", "env")].into();
        let env = ConfigMapEnv {
            data: [
                ("A".to_owned(), "cm".to_owned()),
                ("B".to_owned(), String::new()),
            ]
            .into(),
            fallback: &fallback,
        };
        assert_eq!(env.var("A").as_deref(), Some("cm"));
        assert_eq!(
            env.non_empty("B"),
            None,
            "an empty ConfigMap value is not configured"
        );
        assert_eq!(env.var("C").as_deref(), Some("env"));
    }

    #[test]
    fn reads_the_shipped_config_map() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("manifests/base/config.yaml");
        let data = load(&path).expect("loads");
        assert_eq!(data["AZURE_ENVIRONMENT"], "AzurePublicCloud");
    }
}
