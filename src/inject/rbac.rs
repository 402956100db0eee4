//! Offline RBAC evaluation of the identity-binding permission from the Roles and bindings in the input:
//! may `system:serviceaccount:<ns>:<sa>` do verb `use-managed-identity` on API group
//! `cid.wi.aks.azure.com`, resource `<client id>`? The webhook asks the API server the same question
//! with a cluster-scoped SubjectAccessReview (`crate::k8s::authz::access_review`), which the RBAC authorizer
//! answers from ClusterRoleBindings alone, so only those grant here too. RoleBindings that would grant
//! it inside their namespace are reported, since that is the usual mistake.
//!
//! Only what is in the input counts, so a missing grant is a warning, never a refusal: the grant may
//! well exist in the cluster already.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::documents::{self, Document};
use super::InjectError;
use crate::k8s::authz::access_review;

pub use crate::k8s::authz::access_review::{API_GROUP, VERB};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    api_groups: Vec<String>,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    verbs: Vec<String>,
    #[serde(default)]
    resource_names: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LabelSelector {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
    #[serde(default)]
    match_expressions: Vec<Requirement>,
}

#[derive(Debug, Default, Deserialize)]
struct Requirement {
    key: String,
    operator: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AggregationRule {
    #[serde(default)]
    cluster_role_selectors: Vec<LabelSelector>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Role {
    #[serde(default)]
    metadata: Meta,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    aggregation_rule: Option<AggregationRule>,
}

#[derive(Debug, Deserialize)]
struct RoleRef {
    kind: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct BindingSubject {
    kind: String,
    name: String,
    #[serde(default)]
    namespace: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Binding {
    #[serde(default)]
    metadata: Meta,
    role_ref: RoleRef,
    #[serde(default)]
    subjects: Vec<BindingSubject>,
}

/// The RBAC objects of the input.
#[derive(Debug, Default)]
pub struct Rbac {
    cluster_roles: Vec<Role>,
    roles: Vec<Role>,
    cluster_role_bindings: Vec<Binding>,
    role_bindings: Vec<Binding>,
}

impl Rbac {
    pub fn from_documents(
        documents: &[Document],
        default_namespace: &str,
    ) -> Result<Self, InjectError> {
        let mut rbac = Rbac::default();
        for document in documents {
            let mut objects = Vec::new();
            documents::objects(&document.value, "", &mut objects);
            for (pointer, object) in objects {
                let (group, kind) = documents::group_kind(object);
                if group != "rbac.authorization.k8s.io" {
                    continue;
                }
                let bad = |e: serde_json::Error| {
                    documents::invalid(document, &pointer, format!("not a valid {kind}: {e}"))
                };
                match kind {
                    "ClusterRole" => rbac.cluster_roles.push(parse(object).map_err(bad)?),
                    "Role" => {
                        let mut role: Role = parse(object).map_err(bad)?;
                        default_ns(&mut role.metadata, default_namespace);
                        rbac.roles.push(role);
                    }
                    "ClusterRoleBinding" => {
                        rbac.cluster_role_bindings.push(parse(object).map_err(bad)?)
                    }
                    "RoleBinding" => {
                        let mut binding: Binding = parse(object).map_err(bad)?;
                        default_ns(&mut binding.metadata, default_namespace);
                        rbac.role_bindings.push(binding);
                    }
                    _ => {}
                }
            }
        }
        Ok(rbac)
    }

    /// Whether the input holds any RBAC object at all; without any, nothing is checked.
    pub fn is_empty(&self) -> bool {
        self.cluster_roles.is_empty()
            && self.roles.is_empty()
            && self.cluster_role_bindings.is_empty()
            && self.role_bindings.is_empty()
    }

    /// The ClusterRoleBinding that grants the service account the client ID, as
    /// `ClusterRoleBinding name`, or `None` when nothing in the input does.
    pub fn grant(&self, sa_namespace: &str, sa_name: &str, client_id: &str) -> Option<String> {
        let subject = Subject::new(sa_namespace, sa_name, client_id);
        self.cluster_role_bindings
            .iter()
            .find(|binding| {
                binding.role_ref.kind == "ClusterRole"
                    // A ClusterRoleBinding has no namespace to default a subject's to: the API server
                    // requires one on its ServiceAccount subjects.
                    && subject.named_by(binding, "")
                    && allows(&self.cluster_role_rules(&binding.role_ref.name), client_id)
            })
            .map(|binding| format!("ClusterRoleBinding {}", binding.metadata.name))
    }

    /// One sentence per RoleBinding that binds the service account to a role allowing the client ID:
    /// it would grant a request in its namespace, but the webhook's check has none, so it grants
    /// nothing.
    pub fn namespaced_only(
        &self,
        sa_namespace: &str,
        sa_name: &str,
        client_id: &str,
    ) -> Vec<String> {
        let subject = Subject::new(sa_namespace, sa_name, client_id);
        let mut hints = Vec::new();
        for binding in &self.role_bindings {
            let namespace = &binding.metadata.namespace;
            if !subject.named_by(binding, namespace) {
                continue;
            }
            let (rules, fix) = match binding.role_ref.kind.as_str() {
                "ClusterRole" => (
                    self.cluster_role_rules(&binding.role_ref.name),
                    format!(
                        "bind ClusterRole {} with a ClusterRoleBinding",
                        binding.role_ref.name
                    ),
                ),
                "Role" => (
                    self.roles
                        .iter()
                        .filter(|r| {
                            r.metadata.name == binding.role_ref.name
                                && r.metadata.namespace == *namespace
                        })
                        .flat_map(|r| &r.rules)
                        .collect(),
                    "grant it with a ClusterRole and a ClusterRoleBinding".to_owned(),
                ),
                _ => continue,
            };
            if allows(&rules, client_id) {
                hints.push(format!(
                    "RoleBinding {namespace}/{} binds service account {sa_namespace}/{sa_name} to \
                     {VERB} on {client_id} only inside namespace {namespace}; the webhook's check is \
                     cluster-scoped: {fix}",
                    binding.metadata.name
                ));
            }
        }
        hints
    }

    /// The rules of a ClusterRole, including those an `aggregationRule` collects from other
    /// ClusterRoles by label (what the aggregation controller would fill in).
    fn cluster_role_rules(&self, name: &str) -> Vec<&Rule> {
        let mut rules = Vec::new();
        for role in self
            .cluster_roles
            .iter()
            .filter(|r| r.metadata.name == name)
        {
            rules.extend(&role.rules);
            let selectors = role
                .aggregation_rule
                .as_ref()
                .map(|a| a.cluster_role_selectors.as_slice())
                .unwrap_or_default();
            for other in &self.cluster_roles {
                if other.metadata.name != name
                    && selectors
                        .iter()
                        .any(|s| selector_matches(s, &other.metadata.labels))
                {
                    rules.extend(&other.rules);
                }
            }
        }
        rules
    }
}

/// The service account as the webhook's SubjectAccessReview presents it, taken from that review so
/// the two cannot drift apart: its user name and the groups every service account is in.
struct Subject<'a> {
    namespace: &'a str,
    name: &'a str,
    user: String,
    groups: Vec<String>,
}

impl<'a> Subject<'a> {
    fn new(namespace: &'a str, name: &'a str, client_id: &str) -> Self {
        let spec = access_review::review_for(namespace, name, client_id).spec;
        Self {
            namespace,
            name,
            user: spec.user.unwrap_or_default(),
            groups: spec.groups.unwrap_or_default(),
        }
    }

    /// Whether one of the binding's subjects is this service account; a ServiceAccount subject
    /// without a namespace is in `default_namespace`, and matches nothing when that is empty.
    fn named_by(&self, binding: &Binding, default_namespace: &str) -> bool {
        binding.subjects.iter().any(|s| match s.kind.as_str() {
            "ServiceAccount" => {
                let ns = if s.namespace.is_empty() {
                    default_namespace
                } else {
                    &s.namespace
                };
                !ns.is_empty() && s.name == self.name && ns == self.namespace
            }
            "User" => s.name == self.user,
            "Group" => self.groups.contains(&s.name),
            _ => false,
        })
    }
}

fn allows(rules: &[&Rule], client_id: &str) -> bool {
    rules.iter().any(|r| rule_allows(r, client_id))
}

fn parse<T: serde::de::DeserializeOwned>(object: &Value) -> Result<T, serde_json::Error> {
    T::deserialize(object)
}

fn default_ns(meta: &mut Meta, default_namespace: &str) {
    if meta.namespace.is_empty() {
        meta.namespace = default_namespace.to_owned();
    }
}

/// RBAC rule matching for a request without a resource name: a rule limited by `resourceNames`
/// never matches such a request.
fn rule_allows(rule: &Rule, client_id: &str) -> bool {
    let has = |list: &[String], wanted: &str| list.iter().any(|v| v == "*" || v == wanted);
    has(&rule.api_groups, API_GROUP)
        && has(&rule.resources, client_id)
        && has(&rule.verbs, VERB)
        && rule.resource_names.is_empty()
}

fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    // An empty selector in an aggregationRule matches every ClusterRole, as in the API server.
    selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        && selector.match_expressions.iter().all(|r| {
            let value = labels.get(&r.key);
            match r.operator.as_str() {
                "In" => value.is_some_and(|v| r.values.contains(v)),
                "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests;
