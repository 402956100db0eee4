//! Decides which identity a pod gets: client and tenant ID, token lifetime, audience and whether
//! identity binding applies. Everything here is read from the pod, its service account and settings.

use std::sync::Arc;

use super::service_account::ServiceAccountMeta;
use crate::mutate::settings::{IdentityBinding, Settings};

use super::denial::Denial;
use super::names::*;
use super::view::PodView;

/// The identity the pod's containers receive.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity<'s> {
    /// Empty when the service account names no client ID: `AZURE_CLIENT_ID` is then not injected.
    pub client_id: Arc<str>,
    pub tenant_id: Arc<str>,
    pub token_expiration_seconds: i64,
    pub audience: &'s Arc<str>,
    /// Set when the pod opted into identity binding and the webhook has it configured.
    pub identity_binding: Option<&'s IdentityBinding>,
}

pub fn resolve<'s>(
    settings: &'s Settings,
    pod: &PodView<'_>,
    sa: &ServiceAccountMeta,
    warnings: &mut Vec<String>,
) -> Result<Identity<'s>, Denial> {
    let identity_binding = identity_binding(settings, pod, warnings)?;
    let client_id: Arc<str> = sa
        .annotations
        .get(CLIENT_ID_ANNOTATION)
        .unwrap_or_default()
        .into();
    if client_id.is_empty() {
        warnings.push(format!(
            "service account {}/{} has no {CLIENT_ID_ANNOTATION} annotation: {ENV_CLIENT_ID} is not injected",
            sa.namespace, sa.name
        ));
    }
    // An empty tenant annotation falls back to the cluster tenant instead of suppressing it (W07).
    let tenant_id = match sa.annotations.get(TENANT_ID_ANNOTATION) {
        Some(tenant) if !tenant.is_empty() => tenant.into(),
        _ => settings.tenant_id.clone(),
    };
    Ok(Identity {
        client_id,
        tenant_id,
        token_expiration_seconds: token_expiration(pod, sa)?,
        audience: identity_binding.map_or(&settings.audience, |ib| &ib.audience),
        identity_binding,
    })
}

/// The pod opts in with the switch as an annotation or a label whose value is `"true"` in any case.
fn identity_binding<'s>(
    settings: &'s Settings,
    pod: &PodView<'_>,
    warnings: &mut Vec<String>,
) -> Result<Option<&'s IdentityBinding>, Denial> {
    let Some(ib) = settings.identity_binding.as_ref() else {
        if switch_value(pod, DEFAULT_IDENTITY_BINDING_KEY).is_some_and(is_true) {
            warnings.push(format!(
                "{DEFAULT_IDENTITY_BINDING_KEY} is ignored: identity binding is not enabled on this webhook"
            ));
        }
        return Ok(None);
    };
    let Some(value) = switch_value(pod, &ib.switch_key) else {
        return Ok(None);
    };
    if !is_true(value) {
        if !value.eq_ignore_ascii_case("false") {
            warnings.push(format!(
                "{}: value {value:?} is not \"true\", so identity binding is not used",
                ib.switch_key
            ));
        }
        return Ok(None);
    }
    // Without a token proxy the pod would get a token no one can exchange (W03).
    if ib.token_proxy.is_empty() {
        return Err(Denial::invalid_pod(format!(
            "pod requests identity binding ({}: \"true\") but this webhook has no token proxy configured \
             (AZURE_KUBERNETES_TOKEN_PROXY): remove the {} switch or configure identity binding on the webhook",
            ib.switch_key, ib.switch_key
        )));
    }
    Ok(Some(ib))
}

/// The annotation wins over the label when both are present and one of them says `"true"`.
fn switch_value<'p>(pod: &'p PodView<'_>, key: &str) -> Option<&'p str> {
    let annotation = pod.annotation(key);
    let label = pod.label(key);
    match (annotation, label) {
        (Some(a), Some(l)) if !is_true(a) && is_true(l) => Some(l),
        (Some(a), _) => Some(a),
        (None, l) => l,
    }
}

fn is_true(value: &str) -> bool {
    value.eq_ignore_ascii_case("true")
}

/// Pod annotation if non-empty, else service-account annotation if non-empty, else 3600; 3600..=86400.
fn token_expiration(pod: &PodView<'_>, sa: &ServiceAccountMeta) -> Result<i64, Denial> {
    let from_pod = pod
        .annotation(TOKEN_EXPIRATION_ANNOTATION)
        .filter(|v| !v.is_empty());
    let (raw, source) = match from_pod {
        Some(v) => (v, "pod".to_owned()),
        None => match sa
            .annotations
            .get(TOKEN_EXPIRATION_ANNOTATION)
            .filter(|v| !v.is_empty())
        {
            Some(v) => (v, format!("service account {}/{}", sa.namespace, sa.name)),
            None => return Ok(DEFAULT_TOKEN_EXPIRATION_SECONDS),
        },
    };
    let seconds = parse_int(raw).ok_or_else(|| {
        Denial::invalid_pod(format!(
            "{TOKEN_EXPIRATION_ANNOTATION} on {source} is {raw:?}, which is not a whole number of seconds"
        ))
    })?;
    if !(MIN_TOKEN_EXPIRATION_SECONDS..=MAX_TOKEN_EXPIRATION_SECONDS).contains(&seconds) {
        return Err(Denial::invalid_pod(format!(
            "token expiration {seconds} not valid. Expected value to be between \
             {MIN_TOKEN_EXPIRATION_SECONDS} and {MAX_TOKEN_EXPIRATION_SECONDS} \
             ({TOKEN_EXPIRATION_ANNOTATION} on {source})"
        )));
    }
    Ok(seconds)
}

/// Base-10 with an optional sign, as Go's `strconv.ParseInt` (W20 kept: a leading `+` is accepted).
/// Rust's integer parser has exactly that grammar: one optional sign, then ASCII digits.
pub fn parse_int(raw: &str) -> Option<i64> {
    raw.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parse_int;

    #[test]
    fn parses_integers_like_go() {
        assert_eq!(parse_int("7200"), Some(7200));
        assert_eq!(parse_int("+7200"), Some(7200));
        assert_eq!(parse_int("-3600"), Some(-3600));
        assert_eq!(parse_int("++1"), None);
        assert_eq!(parse_int("+-1"), None);
        assert_eq!(parse_int(" 1"), None);
        assert_eq!(parse_int("1h"), None);
        assert_eq!(parse_int(""), None);
        assert_eq!(parse_int("99999999999999999999"), None);
    }
}
