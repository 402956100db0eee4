//! Azure cloud name (`AZURE_ENVIRONMENT`) → Microsoft Entra authority host (`AZURE_AUTHORITY_HOST`).
//!
//! Upstream resolved names through the deprecated go-autorest table, which still knew the retired German cloud
//! and read Azure Stack endpoints from a file (W28). We keep the three live public clouds and their aliases,
//! and refuse everything else at startup with a message listing what is accepted.

/// A supported Azure cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Public,
    China,
    UsGovernment,
}

/// Names accepted for `AZURE_ENVIRONMENT`, for error messages.
const ACCEPTED: &str =
    "AzurePublicCloud (or AzureCloud), AzureChinaCloud, AzureUSGovernmentCloud (or AzureUSGovernment)";

/// `AZURE_ENVIRONMENT` names no cloud we support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AZURE_ENVIRONMENT {name:?} is not supported{note}; accepted (any case): {ACCEPTED}")]
pub struct UnknownCloud {
    name: String,
    note: &'static str,
}

impl Cloud {
    /// Resolves a cloud name case-insensitively; empty means the public cloud (as upstream).
    pub fn from_name(name: &str) -> Result<Self, UnknownCloud> {
        match name.to_ascii_uppercase().as_str() {
            "" | "AZUREPUBLICCLOUD" | "AZURECLOUD" => Ok(Self::Public),
            "AZURECHINACLOUD" => Ok(Self::China),
            "AZUREUSGOVERNMENTCLOUD" | "AZUREUSGOVERNMENT" => Ok(Self::UsGovernment),
            upper => Err(UnknownCloud {
                name: name.to_owned(),
                note: match upper {
                    "AZUREGERMANCLOUD" => " (the German cloud was retired)",
                    "AZURESTACKCLOUD" => " (Azure Stack endpoints are not built in)",
                    _ => "",
                },
            }),
        }
    }

    /// Authority host injected as `AZURE_AUTHORITY_HOST`; the trailing `/` is kept as upstream injects it.
    pub fn authority_host(self) -> &'static str {
        match self {
            Self::Public => "https://login.microsoftonline.com/",
            Self::China => "https://login.chinacloudapi.cn/",
            Self::UsGovernment => "https://login.microsoftonline.us/",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_names_and_aliases_case_insensitively() {
        let cases = [
            ("", "https://login.microsoftonline.com/"),
            ("AzurePublicCloud", "https://login.microsoftonline.com/"),
            ("azurecloud", "https://login.microsoftonline.com/"),
            ("AZURECHINACLOUD", "https://login.chinacloudapi.cn/"),
            (
                "AzureUSGovernmentCloud",
                "https://login.microsoftonline.us/",
            ),
            ("azureusgovernment", "https://login.microsoftonline.us/"),
        ];
        for (name, host) in cases {
            assert_eq!(
                Cloud::from_name(name).map(Cloud::authority_host),
                Ok(host),
                "{name}"
            );
        }
    }

    #[test]
    fn refuses_retired_and_unknown_clouds_listing_accepted_names() {
        for (name, note) in [
            ("AzureGermanCloud", "retired"),
            ("AzureStackCloud", "Azure Stack"),
            ("Mars", "not supported;"),
        ] {
            let msg = Cloud::from_name(name).err().map(|e| e.to_string());
            let msg = msg.unwrap_or_default();
            assert!(msg.starts_with("AZURE_ENVIRONMENT"), "{msg}");
            assert!(msg.contains(note), "{msg}");
            assert!(msg.contains("AzureUSGovernmentCloud"), "{msg}");
        }
    }
}
