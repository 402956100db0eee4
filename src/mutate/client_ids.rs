//! Which client IDs an identity-binding pod's containers will present once mutated, so each can be
//! authorised before the pod is admitted. `plan` calls it with the identity it resolved.
//!
//! The rules mirror `container::env_ops` exactly, because checking anything other than what the
//! containers really end up with would let a pod be admitted under an identity nobody checked:
//! - a container without `AZURE_CLIENT_ID` gets the service account's client ID (when it has one);
//! - a container's own literal value wins, unless this webhook injected it on an earlier invocation
//!   (the `injected-identity` record), in which case it is refreshed to the service account's ID, or
//!   removed when the service account no longer names one;
//! - a `valueFrom` cannot be resolved here (Secret, ConfigMap, field ref), so it is reported instead.

use super::names::ENV_CLIENT_ID;
use super::record::InjectedIdentity;
use super::view::{ContainerView, EnvVarView, PodView};

/// The client IDs a pod's injected containers present.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIds {
    /// Literal client IDs, deduplicated, in order of first appearance (init containers first).
    pub ids: Vec<String>,
    /// Names of containers whose `AZURE_CLIENT_ID` comes from a `valueFrom`.
    pub unresolvable: Vec<String>,
}

/// Every container the webhook injects (init and app containers, minus `skip`) and the client ID
/// each will carry. `sa_client_id` is empty when the service account names none.
/// `previous` is the pod's `injected-identity` record, as the mutation read it.
pub fn presented_client_ids(
    pod: &PodView<'_>,
    sa_client_id: &str,
    skip: &[&str],
    previous: Option<&InjectedIdentity>,
) -> ClientIds {
    let mut out = ClientIds::default();
    let Some(spec) = pod.spec.as_ref() else {
        return out;
    };
    let groups = [spec.init_containers.as_deref(), spec.containers.as_deref()];
    for container in groups.into_iter().flatten().flatten() {
        if skip.contains(&container.name.as_str()) {
            continue;
        }
        container_client_ids(container, sa_client_id, previous, &mut out);
    }
    out
}

fn container_client_ids(
    container: &ContainerView<'_>,
    sa_client_id: &str,
    previous: Option<&InjectedIdentity>,
    out: &mut ClientIds,
) {
    let entries: Vec<(usize, &EnvVarView<'_>)> = container
        .env
        .iter()
        .flat_map(|env| env.named(ENV_CLIENT_ID))
        .collect();
    let Some(&(first, _)) = entries.first() else {
        push(out, sa_client_id);
        return;
    };
    // With no client ID to inject, the mutation removes the first literal it injected earlier.
    let removed = if sa_client_id.is_empty() {
        entries
            .iter()
            .find(|(_, e)| e.value_from.is_none() && was_injected(previous, literal(e)))
            .map(|&(index, _)| index)
    } else {
        None
    };
    let mut unresolvable = false;
    // Duplicate names are all considered: which one the runtime uses is not ours to guess.
    for &(index, entry) in &entries {
        if entry.value_from.is_some() {
            unresolvable = true;
        } else if Some(index) == removed {
            continue;
        } else if index == first
            && !sa_client_id.is_empty()
            && was_injected(previous, literal(entry))
        {
            push(out, sa_client_id);
        } else {
            push(out, literal(entry));
        }
    }
    if unresolvable {
        out.unresolvable.push(container.name.as_str().to_owned());
    }
}

fn literal<'e>(entry: &'e EnvVarView<'_>) -> &'e str {
    entry.value().unwrap_or_default()
}

/// Same test as the mutation's: the value is the client ID this webhook recorded injecting.
fn was_injected(previous: Option<&InjectedIdentity>, value: &str) -> bool {
    previous.is_some_and(|p| !p.client_id.is_empty() && p.client_id == value)
}

/// An empty value presents no identity, so there is nothing to authorise.
fn push(out: &mut ClientIds, id: &str) {
    if !id.is_empty() && !out.ids.iter().any(|known| known == id) {
        out.ids.push(id.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::mutate::names::{
        CLIENT_ID_ANNOTATION, INJECTED_IDENTITY_ANNOTATION, SKIP_CONTAINERS_ANNOTATION,
    };
    use crate::mutate::service_account::ServiceAccountMeta;
    use crate::mutate::tests::settings;
    use crate::mutate::{plan, Runtime};

    const SWITCH: &str = "azure.workload.identity/use-identity-binding";

    fn sa(client_id: Option<&str>) -> ServiceAccountMeta {
        ServiceAccountMeta {
            namespace: "ns".into(),
            name: "workload".into(),
            annotations: client_id
                .map(|id| (CLIENT_ID_ANNOTATION.to_owned(), id.to_owned()))
                .into_iter()
                .collect(),
        }
    }

    fn pod(init: Value, containers: Value, annotations: Value) -> Value {
        let mut all = json!({SWITCH: "true"});
        if let (Some(all), Some(extra)) = (all.as_object_mut(), annotations.as_object()) {
            all.extend(extra.clone());
        }
        json!({
            "metadata": {"name": "p", "namespace": "ns", "annotations": all},
            "spec": {"initContainers": init, "containers": containers}
        })
    }

    fn ids_of(input: &Value, sa: &ServiceAccountMeta) -> ClientIds {
        let raw = input.to_string();
        let view = PodView::from_json(&raw).expect("test pod decodes");
        let plan = plan(&settings(), Runtime::default(), &view, sa).expect("pod is admitted");
        assert!(plan.identity.identity_binding, "pod uses identity binding");
        plan.client_ids
    }

    /// The `AZURE_CLIENT_ID` literals the mutated pod really carries, for cross-checking.
    fn ids_after_mutation(input: &Value, sa: &ServiceAccountMeta) -> Vec<String> {
        let raw = input.to_string();
        let view = PodView::from_json(&raw).expect("test pod decodes");
        let mutation = plan(&settings(), Runtime::default(), &view, sa).expect("pod is admitted");
        let patch: json_patch::Patch =
            serde_json::from_slice(&crate::mutate::patch::to_json(&mutation.ops)).expect("patch");
        let mut output = input.clone();
        json_patch::patch(&mut output, &patch).expect("patch applies");
        let skip = view
            .annotation(SKIP_CONTAINERS_ANNOTATION)
            .unwrap_or_default();
        let mut ids: Vec<String> = Vec::new();
        for field in ["initContainers", "containers"] {
            for container in output["spec"][field].as_array().into_iter().flatten() {
                let name = container["name"].as_str().unwrap_or_default();
                if skip.split(';').any(|s| s.trim() == name) {
                    continue;
                }
                for env in container["env"].as_array().into_iter().flatten() {
                    if env["name"] == ENV_CLIENT_ID {
                        if let Some(value) = env["value"].as_str().filter(|v| !v.is_empty()) {
                            if !ids.iter().any(|id| id == value) {
                                ids.push(value.to_owned());
                            }
                        }
                    }
                }
            }
        }
        ids
    }

    fn check(input: Value, sa: ServiceAccountMeta, ids: &[&str], unresolvable: &[&str]) {
        let found = ids_of(&input, &sa);
        assert_eq!(found.ids, ids, "client ids of {input}");
        assert_eq!(found.unresolvable, unresolvable);
        assert_eq!(
            ids_after_mutation(&input, &sa),
            ids,
            "the mutated pod carries exactly the checked ids"
        );
    }

    #[test]
    fn every_container_presents_the_service_account_client_id() {
        let input = pod(
            json!([{"name": "init"}]),
            json!([{"name": "a"}, {"name": "b"}]),
            json!({}),
        );
        check(input, sa(Some("sa-id")), &["sa-id"], &[]);
    }

    #[test]
    fn a_container_literal_wins_over_the_service_account() {
        let input = pod(
            json!([]),
            json!([{"name": "a", "env": [{"name": "AZURE_CLIENT_ID", "value": "own-id"}]}, {"name": "b"}]),
            json!({}),
        );
        check(input, sa(Some("sa-id")), &["own-id", "sa-id"], &[]);
    }

    #[test]
    fn a_literal_is_presented_even_without_a_service_account_client_id() {
        let input = pod(
            json!([{"name": "init", "env": [{"name": "AZURE_CLIENT_ID", "value": "own-id"}]}]),
            json!([{"name": "a"}]),
            json!({}),
        );
        check(input, sa(None), &["own-id"], &[]);
    }

    #[test]
    fn value_from_is_reported_as_unresolvable() {
        let input = pod(
            json!([]),
            json!([{"name": "a", "env": [{"name": "AZURE_CLIENT_ID",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}]),
            json!({}),
        );
        check(input, sa(Some("sa-id")), &[], &["a"]);
    }

    #[test]
    fn skipped_containers_are_not_considered() {
        let input = pod(
            json!([{"name": "init", "env": [{"name": "AZURE_CLIENT_ID", "value": "init-id"}]}]),
            json!([{"name": "a", "env": [{"name": "AZURE_CLIENT_ID", "valueFrom": {"fieldRef": {}}}]},
                   {"name": "b"}]),
            json!({SKIP_CONTAINERS_ANNOTATION: "init; a"}),
        );
        check(input, sa(Some("sa-id")), &["sa-id"], &[]);
    }

    #[test]
    fn ids_are_deduplicated_in_order_of_first_appearance() {
        let input = pod(
            json!([{"name": "i", "env": [{"name": "AZURE_CLIENT_ID", "value": "x"}]}]),
            json!([{"name": "a"}, {"name": "b", "env": [{"name": "AZURE_CLIENT_ID", "value": "x"}]},
                   {"name": "c"}]),
            json!({}),
        );
        check(input, sa(Some("sa-id")), &["x", "sa-id"], &[]);
    }

    #[test]
    fn a_value_this_webhook_injected_earlier_is_checked_as_refreshed() {
        // A crafted record must not let a stale literal stand in for the id the pod really gets.
        let record = json!({"clientID": "old-id", "tenantID": "tenant"}).to_string();
        let input = pod(
            json!([]),
            json!([{"name": "a", "env": [{"name": "AZURE_CLIENT_ID", "value": "old-id"}]}]),
            json!({INJECTED_IDENTITY_ANNOTATION: record}),
        );
        check(input.clone(), sa(Some("sa-id")), &["sa-id"], &[]);
        check(input, sa(None), &[], &[]);
    }

    #[test]
    fn empty_values_present_nothing() {
        let input = pod(
            json!([]),
            json!([{"name": "a", "env": [{"name": "AZURE_CLIENT_ID", "value": ""}]}]),
            json!({}),
        );
        check(input, sa(Some("sa-id")), &[], &[]);
        check(
            pod(json!([]), json!([{"name": "a"}]), json!({})),
            sa(None),
            &[],
            &[],
        );
    }

    #[test]
    fn pods_without_identity_binding_have_nothing_to_check() {
        let input = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}});
        let raw = input.to_string();
        let view = PodView::from_json(&raw).expect("decodes");
        let plan = plan(&settings(), Runtime::default(), &view, &sa(Some("id"))).expect("ok");
        assert!(!plan.identity.identity_binding);
    }
}
