use super::*;

const CID: &str = "11111111-2222-3333-4444-555555555555";

fn rbac(yaml: &str) -> Rbac {
    let documents = documents::parse("in", yaml).expect("parses");
    Rbac::from_documents(&documents, "default").expect("valid RBAC")
}

fn cluster_role(name: &str, rule: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {name}\nrules:\n- {rule}\n---\n"
    )
}

fn cluster_binding(role: &str, subject: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: {role}-binding\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}\nsubjects:\n- {subject}\n---\n"
    )
}

const RULE: &str = "{apiGroups: [cid.wi.aks.azure.com], resources: [11111111-2222-3333-4444-555555555555], verbs: [use-managed-identity]}";
const SA: &str = "{kind: ServiceAccount, name: app, namespace: demo}";

#[test]
fn a_cluster_role_binding_to_the_service_account_grants() {
    let rbac = rbac(&(cluster_role("use", RULE) + &cluster_binding("use", SA)));
    assert_eq!(
        rbac.grant("demo", "app", CID).as_deref(),
        Some("ClusterRoleBinding use-binding")
    );
    assert_eq!(rbac.grant("demo", "other", CID), None);
    assert_eq!(rbac.grant("demo", "app", "another-client"), None);
}

#[test]
fn wildcards_are_honoured() {
    for rule in [
        "{apiGroups: ['*'], resources: [11111111-2222-3333-4444-555555555555], verbs: [use-managed-identity]}",
        "{apiGroups: [cid.wi.aks.azure.com], resources: ['*'], verbs: [use-managed-identity]}",
        "{apiGroups: [cid.wi.aks.azure.com], resources: [11111111-2222-3333-4444-555555555555], verbs: ['*']}",
    ] {
        let rbac = rbac(&(cluster_role("use", rule) + &cluster_binding("use", SA)));
        assert!(rbac.grant("demo", "app", CID).is_some(), "{rule}");
    }
}

#[test]
fn other_verbs_groups_and_resource_names_do_not_grant() {
    for rule in [
        "{apiGroups: [cid.wi.aks.azure.com], resources: [11111111-2222-3333-4444-555555555555], verbs: [get]}",
        "{apiGroups: [''], resources: [11111111-2222-3333-4444-555555555555], verbs: [use-managed-identity]}",
        "{apiGroups: [cid.wi.aks.azure.com], resources: ['*'], verbs: ['*'], resourceNames: [x]}",
    ] {
        let rbac = rbac(&(cluster_role("use", rule) + &cluster_binding("use", SA)));
        assert_eq!(rbac.grant("demo", "app", CID), None, "{rule}");
    }
}

#[test]
fn user_and_group_subjects_match_the_service_account() {
    for subject in [
        "{kind: User, name: 'system:serviceaccount:demo:app'}",
        "{kind: Group, name: 'system:serviceaccounts'}",
        "{kind: Group, name: 'system:serviceaccounts:demo'}",
        "{kind: Group, name: 'system:authenticated'}",
    ] {
        let rbac = rbac(&(cluster_role("use", RULE) + &cluster_binding("use", subject)));
        assert!(rbac.grant("demo", "app", CID).is_some(), "{subject}");
    }
    let rbac = rbac(
        &(cluster_role("use", RULE)
            + &cluster_binding("use", "{kind: Group, name: 'system:serviceaccounts:other'}")),
    );
    assert_eq!(rbac.grant("demo", "app", CID), None);
}

fn role_binding(name: &str, namespace: &str, role_kind: &str, role: &str, subject: &str) -> String {
    format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         roleRef: {{kind: {role_kind}, name: {role}}}\nsubjects:\n- {subject}\n---\n"
    )
}

#[test]
fn the_live_check_is_cluster_scoped() {
    // Why RoleBindings never grant here: the webhook's review has no namespace.
    let review = access_review::review_for("demo", "app", CID);
    let attributes = review
        .spec
        .resource_attributes
        .expect("resource attributes");
    assert_eq!(attributes.namespace, None);
}

#[test]
fn a_role_binding_to_a_cluster_role_never_grants_and_says_why() {
    let yaml = cluster_role("use", RULE)
        + &role_binding(
            "rb",
            "demo",
            "ClusterRole",
            "use",
            "{kind: ServiceAccount, name: app}",
        );
    let rbac = rbac(&yaml);
    assert_eq!(rbac.grant("demo", "app", CID), None);
    assert_eq!(
        rbac.namespaced_only("demo", "app", CID),
        [format!(
            "RoleBinding demo/rb binds service account demo/app to use-managed-identity on {CID} \
             only inside namespace demo; the webhook's check is cluster-scoped: bind ClusterRole use \
             with a ClusterRoleBinding"
        )],
        "a subject without namespace is in the binding's namespace"
    );
    assert_eq!(
        rbac.namespaced_only("other", "app", CID),
        Vec::<String>::new()
    );
    assert_eq!(
        rbac.namespaced_only("demo", "app", "another-client"),
        Vec::<String>::new()
    );
}

#[test]
fn a_role_binding_to_a_role_never_grants_and_says_why() {
    let yaml = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: r, namespace: other}}\nrules:\n- {RULE}\n---\n"
    ) + &role_binding("rb", "other", "Role", "r", SA)
        + &role_binding("wrong-ns", "demo", "Role", "r", SA);
    let rbac = rbac(&yaml);
    assert_eq!(rbac.grant("demo", "app", CID), None);
    assert_eq!(
        rbac.namespaced_only("demo", "app", CID),
        [format!(
            "RoleBinding other/rb binds service account demo/app to use-managed-identity on {CID} \
             only inside namespace other; the webhook's check is cluster-scoped: grant it with a \
             ClusterRole and a ClusterRoleBinding"
        )],
        "a RoleBinding refers to a Role of its own namespace"
    );
}

#[test]
fn a_cluster_role_binding_grants_even_beside_a_role_binding() {
    let yaml = cluster_role("use", RULE)
        + &role_binding("rb", "demo", "ClusterRole", "use", SA)
        + &cluster_binding("use", SA);
    assert_eq!(
        rbac(&yaml).grant("demo", "app", CID).as_deref(),
        Some("ClusterRoleBinding use-binding")
    );
}

#[test]
fn a_cluster_role_binding_needs_the_service_account_namespace() {
    // The API server rejects such a subject; it must not grant by borrowing a stray namespace.
    let yaml = cluster_role("use", RULE)
        + &cluster_binding("use", "{kind: ServiceAccount, name: app}")
            .replace("name: use-binding", "name: use-binding\n  namespace: demo");
    assert_eq!(rbac(&yaml).grant("demo", "app", CID), None);
}

#[test]
fn aggregated_cluster_roles_collect_rules_by_label() {
    let yaml = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: agg}\n\
                aggregationRule:\n  clusterRoleSelectors:\n  - matchLabels: {wi: 'true'}\nrules: []\n---\n\
                apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: part, labels: {wi: 'true'}}\nrules:\n- "
        .to_owned()
        + RULE
        + "\n---\n"
        + &cluster_binding("agg", SA);
    assert!(rbac(&yaml).grant("demo", "app", CID).is_some());
}

#[test]
fn a_malformed_binding_names_the_document() {
    let documents = documents::parse(
        "in",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b}\n",
    )
    .expect("parses");
    let error = Rbac::from_documents(&documents, "default").expect_err("no roleRef");
    assert_eq!(
        error.to_string(),
        "in: document 1: (document): not a valid ClusterRoleBinding: missing field `roleRef`"
    );
}
