//! Kubernetes name syntax checks (the rules of apimachinery's `validation` package), so that a bad name in
//! the configuration fails at startup instead of in every pod the API server later rejects.
//! Each check returns the reason as text; callers wrap it in a `ConfigError` naming the variable or flag.

const MAX_NAME: usize = 63;
const MAX_SUBDOMAIN: usize = 253;

/// A qualified name: `[prefix/]name`, prefix a DNS subdomain, name up to 63 characters of
/// `[A-Za-z0-9._-]` starting and ending with an alphanumeric character (annotation and label keys).
pub fn qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("the prefix before '/' must not be empty".into());
        }
        dns_subdomain(prefix).map_err(|r| format!("prefix {prefix:?}: {r}"))?;
    }
    if name.is_empty() {
        return Err("the name part must not be empty".into());
    }
    if name.contains('/') {
        return Err("at most one '/' is allowed".into());
    }
    name_part(name).map_err(|r| format!("name part {name:?}: {r}"))
}

/// A label value: empty, or a name part (up to 63 characters, `[A-Za-z0-9._-]`, alphanumeric at both ends).
pub fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Ok(());
    }
    name_part(s)
}

/// A DNS-1123 subdomain: up to 253 characters of lower-case alphanumerics, `-` and `.`, each dot-separated
/// label starting and ending with an alphanumeric character (ConfigMap names, key prefixes, signer domains).
pub fn dns_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_SUBDOMAIN {
        return Err(format!("must be at most {MAX_SUBDOMAIN} characters"));
    }
    for label in s.split('.') {
        lower_alnum_dash(label)?;
    }
    Ok(())
}

/// A DNS-1123 label: up to 63 lower-case alphanumerics and `-`, alphanumeric at both ends (namespaces).
pub fn dns_label(s: &str) -> Result<(), String> {
    if s.len() > MAX_NAME {
        return Err(format!("must be at most {MAX_NAME} characters"));
    }
    lower_alnum_dash(s)
}

fn lower_alnum_dash(label: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if label.is_empty() {
        return Err("must not contain empty labels (no leading, trailing or double '.')".into());
    }
    if !label.chars().all(ok_char) {
        return Err("must consist of lower-case letters, digits, '-' and '.'".into());
    }
    if !label.starts_with(alnum) || !label.ends_with(alnum) {
        return Err("must start and end with a lower-case letter or digit".into());
    }
    Ok(())
}

fn name_part(name: &str) -> Result<(), String> {
    if name.len() > MAX_NAME {
        return Err(format!(
            "must be at most {MAX_NAME} characters, has {}",
            name.len()
        ));
    }
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if !name.chars().all(ok_char) {
        return Err("must consist of letters, digits, '-', '_' and '.'".into());
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualified_names() {
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        for ok in [
            "app",
            "azure.workload.identity/use-identity-binding",
            "A_b.c-D",
            long.as_str(),
            "example.com/x",
        ] {
            assert_eq!(qualified_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "/x",
            "x/",
            "a/b/c",
            "-a",
            "a-",
            "a b",
            too_long.as_str(),
            "Example.com/x",
            "ex..com/x",
        ] {
            assert!(qualified_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn label_values() {
        assert_eq!(label_value(""), Ok(()));
        assert_eq!(label_value("v1.2_x-Y"), Ok(()));
        assert!(label_value("-v").is_err());
        assert!(label_value(&"v".repeat(64)).is_err());
    }

    #[test]
    fn dns_names() {
        assert_eq!(dns_subdomain("kube-root-ca.crt"), Ok(()));
        assert!(dns_subdomain("Kube").is_err());
        assert!(dns_subdomain("a..b").is_err());
        assert!(dns_subdomain(&"a".repeat(254)).is_err());
        assert_eq!(dns_label("azure-workload-identity-system"), Ok(()));
        assert!(dns_label("a.b").is_err());
        assert!(dns_label(&"a".repeat(64)).is_err());
    }
}
