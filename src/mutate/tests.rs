//! Table tests for every mutation rule: each patch is applied with `json-patch` to the input pod and
//! the result compared with the expected pod.

use serde_json::{json, Value};

use super::*;
use crate::mutate::denial::DenyReason;
use crate::mutate::settings::{IdentityBinding, ProxySettings};

const TENANT: &str = "cluster-tenant";
const AUTHORITY: &str = "https://login.microsoftonline.com/";

pub(super) fn settings() -> Settings {
    Settings {
        audience: "api://AzureADTokenExchange".into(),
        tenant_id: TENANT.into(),
        authority_host: AUTHORITY.into(),
        identity_binding: Some(identity_binding(ClusterCa::None)),
        proxy: ProxySettings::default(),
    }
}

/// What a test runs the core with: settings alone (classic sidecars), or settings and runtime facts.
pub(super) trait Setup {
    fn parts(&self) -> (&Settings, Runtime);
}

impl Setup for Settings {
    fn parts(&self) -> (&Settings, Runtime) {
        (self, Runtime::default())
    }
}

impl Setup for (Settings, Runtime) {
    fn parts(&self) -> (&Settings, Runtime) {
        (&self.0, self.1)
    }
}

fn identity_binding(ca: ClusterCa) -> IdentityBinding {
    IdentityBinding {
        switch_key: "azure.workload.identity/use-identity-binding".into(),
        audience: "api://AKSIdentityBinding".into(),
        token_proxy: "https://proxy.example:443".into(),
        sni_name: "sni.example".into(),
        ca,
    }
}

fn with_ca(ca: ClusterCa) -> Settings {
    Settings {
        identity_binding: Some(identity_binding(ca)),
        ..settings()
    }
}

pub(super) fn sa(annotations: &[(&str, &str)]) -> ServiceAccountMeta {
    ServiceAccountMeta {
        namespace: "ns".into(),
        name: "workload".into(),
        annotations: annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

pub(super) fn default_sa() -> ServiceAccountMeta {
    sa(&[(CLIENT_ID_ANNOTATION, "client-1")])
}

pub(super) fn pod(containers: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "ns", "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": "workload", "containers": containers}
    })
}

pub(super) fn one_container() -> Value {
    pod(json!([{"name": "app", "image": "app:1"}]))
}

pub(super) fn try_run(
    setup: &impl Setup,
    input: &Value,
    sa: &ServiceAccountMeta,
) -> Result<(Value, Plan), Denial> {
    let raw = input.to_string();
    let view = PodView::from_json(&raw).expect("test pod decodes");
    let (settings, runtime) = setup.parts();
    let mutation = plan(settings, runtime, &view, sa)?;
    let patch_json = patch::to_json(&mutation.ops);
    let patch: json_patch::Patch =
        serde_json::from_slice(&patch_json).expect("patch is valid RFC 6902");
    let mut output = input.clone();
    json_patch::patch(&mut output, &patch).expect("patch applies to the request object");
    Ok((output, mutation))
}

pub(super) fn run(setup: &impl Setup, input: &Value, sa: &ServiceAccountMeta) -> (Value, Plan) {
    try_run(setup, input, sa).expect("pod is admitted")
}

pub(super) fn reject(setup: &impl Setup, input: &Value, sa: &ServiceAccountMeta) -> Denial {
    try_run(setup, input, sa).expect_err("pod is rejected")
}

pub(super) fn env_of(pod: &Value, field: &str, index: usize) -> Vec<(String, String)> {
    pod["spec"][field][index]["env"]
        .as_array()
        .map(|env| {
            env.iter()
                .map(|e| {
                    (
                        e["name"].as_str().unwrap_or_default().to_owned(),
                        e["value"].as_str().unwrap_or("<valueFrom>").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn names(env: &[(String, String)]) -> Vec<&str> {
    env.iter().map(|(n, _)| n.as_str()).collect()
}

fn volume_name() -> String {
    derived_volume_name("web-0")
}

#[test]
fn mutates_a_plain_pod_exactly_as_upstream() {
    let (output, mutation) = run(&settings(), &one_container(), &default_sa());
    let volume = volume_name();
    let mut expected = one_container();
    expected["metadata"]["annotations"] = json!({
        INJECTED_IDENTITY_ANNOTATION: r#"{"clientID":"client-1","tenantID":"cluster-tenant"}"#
    });
    expected["spec"]["containers"][0]["env"] = json!([
        {"name": "AZURE_CLIENT_ID", "value": "client-1"},
        {"name": "AZURE_TENANT_ID", "value": TENANT},
        {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/var/run/secrets/azure/wi/token/azure-identity-token"},
        {"name": "AZURE_AUTHORITY_HOST", "value": AUTHORITY},
    ]);
    expected["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": volume, "mountPath": "/var/run/secrets/azure/wi", "readOnly": true}]);
    expected["spec"]["volumes"] = json!([{
        "name": volume,
        "projected": {"sources": [{"serviceAccountToken": {
            "audience": "api://AzureADTokenExchange",
            "expirationSeconds": 3600,
            "path": "token/azure-identity-token"
        }}]}
    }]);
    assert_eq!(output, expected);
    assert!(mutation.warnings.is_empty(), "{:?}", mutation.warnings);
}

#[test]
fn mutates_init_containers_and_containers() {
    let mut input = pod(json!([{"name": "a"}, {"name": "b"}]));
    input["spec"]["initContainers"] = json!([{"name": "init"}]);
    let (output, _) = run(&settings(), &input, &default_sa());
    for (field, index) in [("initContainers", 0), ("containers", 0), ("containers", 1)] {
        assert_eq!(env_of(&output, field, index).len(), 4, "{field}[{index}]");
        assert_eq!(
            output["spec"][field][index]["volumeMounts"][0]["mountPath"],
            "/var/run/secrets/azure/wi"
        );
    }
}

#[test]
fn appends_after_existing_env_and_keeps_user_values() {
    let input = pod(json!([{
        "name": "app",
        "env": [
            {"name": "FIRST", "value": "1"},
            {"name": "AZURE_CLIENT_ID", "value": "user-choice"},
            {"name": "AZURE_TENANT_ID", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        ]
    }]));
    let (output, _) = run(&settings(), &input, &default_sa());
    let env = env_of(&output, "containers", 0);
    assert_eq!(
        names(&env),
        [
            "FIRST",
            "AZURE_CLIENT_ID",
            "AZURE_TENANT_ID",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_AUTHORITY_HOST"
        ]
    );
    assert_eq!(env[1].1, "user-choice");
    assert_eq!(env[2].1, "<valueFrom>");
}

#[test]
fn treats_null_env_and_mounts_as_absent() {
    let input = pod(json!([{"name": "app", "env": null, "volumeMounts": null}]));
    let (output, _) = run(&settings(), &input, &default_sa());
    assert_eq!(env_of(&output, "containers", 0).len(), 4);
    assert_eq!(
        output["spec"]["containers"][0]["volumeMounts"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn service_account_without_client_id_gets_no_client_id_and_a_warning() {
    let (output, mutation) = run(&settings(), &one_container(), &sa(&[]));
    let env = env_of(&output, "containers", 0);
    assert_eq!(
        names(&env),
        [
            "AZURE_TENANT_ID",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_AUTHORITY_HOST"
        ]
    );
    assert_eq!(mutation.warnings.len(), 1);
    assert!(
        mutation.warnings[0].contains("ns/workload"),
        "{:?}",
        mutation.warnings
    );
    assert!(mutation.warnings[0].contains(CLIENT_ID_ANNOTATION));
}

#[test]
fn tenant_comes_from_the_service_account_else_the_cluster() {
    let cases = [
        (vec![(TENANT_ID_ANNOTATION, "sa-tenant")], "sa-tenant"),
        // An empty annotation falls back to the cluster tenant (W07).
        (vec![(TENANT_ID_ANNOTATION, "")], TENANT),
        (vec![], TENANT),
    ];
    for (annotations, expected) in cases {
        let (output, _) = run(&settings(), &one_container(), &sa(&annotations));
        let env = env_of(&output, "containers", 0);
        let tenant = env
            .iter()
            .find(|(n, _)| n == "AZURE_TENANT_ID")
            .map(|(_, v)| v.as_str());
        assert_eq!(tenant, Some(expected), "{annotations:?}");
    }
}

fn expiration_of(output: &Value) -> i64 {
    output["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]
        ["expirationSeconds"]
        .as_i64()
        .unwrap_or(-1)
}

#[test]
fn token_expiration_precedence_and_parsing() {
    let cases: [(Option<&str>, Option<&str>, i64); 7] = [
        (None, None, 3600),
        (None, Some("7200"), 7200),
        (Some("86400"), Some("7200"), 86400),
        (Some(""), Some("7200"), 7200),
        (Some("3600"), None, 3600),
        (Some("+7200"), None, 7200),
        (None, Some(""), 3600),
    ];
    for (on_pod, on_sa, expected) in cases {
        let mut input = one_container();
        if let Some(v) = on_pod {
            input["metadata"]["annotations"] = json!({TOKEN_EXPIRATION_ANNOTATION: v});
        }
        let mut account = default_sa();
        if let Some(v) = on_sa {
            account.annotations.insert(TOKEN_EXPIRATION_ANNOTATION, v);
        }
        let (output, _) = run(&settings(), &input, &account);
        assert_eq!(
            expiration_of(&output),
            expected,
            "pod {on_pod:?} sa {on_sa:?}"
        );
    }
}

#[test]
fn rejects_invalid_token_expiration() {
    let cases = [
        (Some("abc"), None, "\"abc\", which is not a whole number"),
        (
            Some("3599"),
            None,
            "token expiration 3599 not valid. Expected value to be between 3600 and 86400",
        ),
        (Some("86401"), None, "token expiration 86401 not valid"),
        (Some("-3600"), None, "token expiration -3600 not valid"),
        (None, Some("1h"), "on service account ns/workload"),
        // An invalid pod value does not fall back to a valid service-account value.
        (Some("x"), Some("7200"), "on pod"),
    ];
    for (on_pod, on_sa, message) in cases {
        let mut input = one_container();
        if let Some(v) = on_pod {
            input["metadata"]["annotations"] = json!({TOKEN_EXPIRATION_ANNOTATION: v});
        }
        let mut account = default_sa();
        if let Some(v) = on_sa {
            account.annotations.insert(TOKEN_EXPIRATION_ANNOTATION, v);
        }
        let rejection = reject(&settings(), &input, &account);
        assert_eq!(rejection.reason, DenyReason::InvalidPod);
        assert!(
            rejection.message.contains(message),
            "{} !~ {message}",
            rejection.message
        );
    }
}

#[test]
fn skipped_containers_get_nothing() {
    let mut input = pod(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
    input["spec"]["initContainers"] = json!([{"name": "init"}]);
    input["metadata"]["annotations"] = json!({SKIP_CONTAINERS_ANNOTATION: " a ; init;;ghost "});
    let (output, mutation) = run(&settings(), &input, &default_sa());
    assert!(output["spec"]["initContainers"][0].get("env").is_none());
    assert!(output["spec"]["containers"][0].get("env").is_none());
    assert!(output["spec"]["containers"][0]
        .get("volumeMounts")
        .is_none());
    assert_eq!(env_of(&output, "containers", 1).len(), 4);
    assert_eq!(env_of(&output, "containers", 2).len(), 4);
    assert_eq!(mutation.warnings.len(), 1, "{:?}", mutation.warnings);
    assert!(mutation.warnings[0].contains("\"ghost\""));
}

#[test]
fn volume_name_comes_from_name_or_generate_name() {
    let mut input = one_container();
    input["metadata"] = json!({"generateName": "web-7d4b9c8f6d-"});
    let (output, _) = run(&settings(), &input, &default_sa());
    assert_eq!(
        output["spec"]["volumes"][0]["name"],
        "azure-workload-identity-reserved-76164477d615f354283814a96cd2a0"
    );
    let (output, _) = run(&settings(), &one_container(), &default_sa());
    assert_eq!(
        output["spec"]["volumes"][0]["name"],
        "azure-workload-identity-reserved-1ae6fac6e0a6c45234c7f9a125d492"
    );
}

fn identity_binding_pod() -> Value {
    let mut input = one_container();
    input["metadata"]["annotations"] =
        json!({"azure.workload.identity/use-identity-binding": "true"});
    input
}

#[test]
fn identity_binding_by_annotation_or_label_in_any_case() {
    let mut by_label = one_container();
    by_label["metadata"]["labels"]["azure.workload.identity/use-identity-binding"] = json!("TRUE");
    let mut by_annotation = one_container();
    by_annotation["metadata"]["annotations"] =
        json!({"azure.workload.identity/use-identity-binding": "True"});
    for input in [by_label, by_annotation] {
        let (output, _) = run(&settings(), &input, &default_sa());
        let token = &output["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
        assert_eq!(token["audience"], "api://AKSIdentityBinding");
        let env = env_of(&output, "containers", 0);
        assert_eq!(
            names(&env),
            [
                "AZURE_CLIENT_ID",
                "AZURE_TENANT_ID",
                "AZURE_FEDERATED_TOKEN_FILE",
                "AZURE_AUTHORITY_HOST",
                "AZURE_KUBERNETES_TOKEN_PROXY",
                "AZURE_KUBERNETES_SNI_NAME",
            ]
        );
        assert_eq!(env[4].1, "https://proxy.example:443");
        assert_eq!(env[5].1, "sni.example");
    }
}

#[test]
fn identity_binding_switch_values_other_than_true_are_ignored() {
    for (value, warns) in [
        ("false", false),
        ("yes", true),
        ("1", true),
        (" true", true),
    ] {
        let mut input = one_container();
        input["metadata"]["annotations"] =
            json!({"azure.workload.identity/use-identity-binding": value});
        let (output, mutation) = run(&settings(), &input, &default_sa());
        let token = &output["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
        assert_eq!(token["audience"], "api://AzureADTokenExchange", "{value:?}");
        assert_eq!(
            mutation.warnings.len(),
            usize::from(warns),
            "{value:?}: {:?}",
            mutation.warnings
        );
    }
}

#[test]
fn identity_binding_projects_the_ca_from_a_config_map() {
    let settings = with_ca(ClusterCa::ConfigMap("kube-root-ca.crt".into()));
    let (output, _) = run(&settings, &identity_binding_pod(), &default_sa());
    assert_eq!(
        output["spec"]["volumes"][0]["projected"]["sources"][1],
        json!({"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca-cert/ca.crt"}], "optional": false}})
    );
    let env = env_of(&output, "containers", 0);
    assert_eq!(
        env[6],
        (
            "AZURE_KUBERNETES_CA_FILE".into(),
            "/var/run/secrets/azure/wi/ca-cert/ca.crt".into()
        )
    );
    assert_eq!(env.len(), 7);
}

#[test]
fn identity_binding_projects_a_cluster_trust_bundle_matching_all_by_default() {
    let settings = with_ca(ClusterCa::ClusterTrustBundle {
        signer_name: "example.com/signer".into(),
        label_selector: json!({}),
    });
    let (output, _) = run(&settings, &identity_binding_pod(), &default_sa());
    assert_eq!(
        output["spec"]["volumes"][0]["projected"]["sources"][1],
        json!({"clusterTrustBundle": {"signerName": "example.com/signer", "labelSelector": {}, "optional": false, "path": "ca-cert/ca.crt"}})
    );
    assert!(names(&env_of(&output, "containers", 0)).contains(&"AZURE_KUBERNETES_CA_FILE"));
}

#[test]
fn identity_binding_with_ca_data_injects_data_and_no_file() {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let settings = with_ca(ClusterCa::Data(pem.into()));
    let (output, _) = run(&settings, &identity_binding_pod(), &default_sa());
    let env = env_of(&output, "containers", 0);
    assert!(!names(&env).contains(&"AZURE_KUBERNETES_CA_FILE"), "W04");
    assert_eq!(
        env.last(),
        Some(&("AZURE_KUBERNETES_CA_DATA".to_string(), pem.to_string()))
    );
    assert_eq!(
        output["spec"]["volumes"][0]["projected"]["sources"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn identity_binding_without_ca_injects_no_ca_file() {
    let (output, _) = run(&settings(), &identity_binding_pod(), &default_sa());
    let env = env_of(&output, "containers", 0);
    assert!(!names(&env)
        .iter()
        .any(|n| n.starts_with("AZURE_KUBERNETES_CA")));
}

#[test]
fn ca_settings_do_not_touch_pods_without_identity_binding() {
    let settings = with_ca(ClusterCa::ConfigMap("kube-root-ca.crt".into()));
    let (output, _) = run(&settings, &one_container(), &default_sa());
    assert_eq!(env_of(&output, "containers", 0).len(), 4);
    assert_eq!(
        output["spec"]["volumes"][0]["projected"]["sources"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[test]
fn identity_binding_without_token_proxy_is_denied() {
    let mut settings = settings();
    if let Some(ib) = settings.identity_binding.as_mut() {
        ib.token_proxy = "".into();
    }
    let rejection = reject(&settings, &identity_binding_pod(), &default_sa());
    assert_eq!(rejection.reason, DenyReason::InvalidPod);
    assert!(
        rejection.message.contains("AZURE_KUBERNETES_TOKEN_PROXY"),
        "{}",
        rejection.message
    );
}

#[test]
fn identity_binding_switch_is_ignored_with_a_warning_when_disabled() {
    let settings = Settings {
        identity_binding: None,
        ..settings()
    };
    let (output, mutation) = run(&settings, &identity_binding_pod(), &default_sa());
    let token = &output["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["audience"], "api://AzureADTokenExchange");
    assert_eq!(mutation.warnings.len(), 1);
    assert!(mutation.warnings[0].contains("not enabled"));
}

#[test]
fn custom_switch_suffix_is_honoured() {
    let mut settings = settings();
    if let Some(ib) = settings.identity_binding.as_mut() {
        ib.switch_key = "azure.workload.identity/use-custom".into();
    }
    let mut input = one_container();
    input["metadata"]["annotations"] = json!({"azure.workload.identity/use-custom": "true"});
    let (output, _) = run(&settings, &input, &default_sa());
    let token = &output["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["audience"], "api://AKSIdentityBinding");
}

#[test]
fn keeps_fields_it_does_not_know() {
    let mut input = pod(json!([{
        "name": "app",
        "restartPolicyRules": [{"action": "Restart", "exitCodes": {"operator": "In", "values": [42]}}],
        "env": [{"name": "X", "valueFrom": {"fileKeyRef": {"path": "p", "key": "k", "volumeName": "v"}}}],
        "resources": {"claims": [{"name": "gpu", "request": "r"}]}
    }]));
    input["spec"]["hostnameOverride"] = json!("custom-host");
    input["spec"]["resources"] = json!({"limits": {"cpu": "1"}});
    input["spec"]["volumes"] = json!([{"name": "cert", "projected": {"sources": [{"podCertificate": {"signerName": "s", "keyType": "ED25519"}}]}}]);
    input["status"] = json!({"phase": "Pending"});
    let (output, _) = run(&settings(), &input, &default_sa());
    assert_eq!(output["spec"]["hostnameOverride"], "custom-host");
    assert_eq!(output["spec"]["resources"], input["spec"]["resources"]);
    assert_eq!(
        output["spec"]["containers"][0]["restartPolicyRules"],
        input["spec"]["containers"][0]["restartPolicyRules"]
    );
    assert_eq!(
        output["spec"]["containers"][0]["resources"],
        input["spec"]["containers"][0]["resources"]
    );
    assert_eq!(
        output["spec"]["containers"][0]["env"][0],
        input["spec"]["containers"][0]["env"][0]
    );
    assert_eq!(output["spec"]["volumes"][0], input["spec"]["volumes"][0]);
    assert_eq!(output["status"], input["status"]);
}

#[test]
fn writes_annotation_keys_as_escaped_pointers() {
    let mut input = one_container();
    input["metadata"]["annotations"] = json!({"other": "x"});
    let raw = input.to_string();
    let view = PodView::from_json(&raw).expect("decodes");
    let mutation = plan(&settings(), Runtime::default(), &view, &default_sa()).expect("admitted");
    assert!(mutation.ops.iter().any(|op| op.path.to_string()
        == "/metadata/annotations/azure.workload.identity~1injected-identity"));
}

#[test]
fn adds_metadata_when_the_pod_has_none() {
    let input = json!({"spec": {"containers": [{"name": "app"}]}});
    let (output, _) = run(&settings(), &input, &default_sa());
    assert!(output["metadata"]["annotations"][INJECTED_IDENTITY_ANNOTATION].is_string());
    assert_eq!(
        output["spec"]["volumes"][0]["name"],
        derived_volume_name(" (prefix)")
    );
}

#[test]
fn rejects_a_pod_without_spec() {
    let rejection = reject(
        &settings(),
        &json!({"metadata": {"name": "x"}}),
        &default_sa(),
    );
    assert_eq!(rejection.reason, DenyReason::InvalidPod);
}

#[test]
fn rejects_a_user_volume_at_the_reserved_path() {
    let input = pod(
        json!([{"name": "app", "volumeMounts": [{"name": "mine", "mountPath": "/var/run/secrets/azure/wi"}]}]),
    );
    let rejection = reject(&settings(), &input, &default_sa());
    assert_eq!(rejection.reason, DenyReason::InvalidPod);
    assert!(
        rejection.message.contains("\"mine\""),
        "{}",
        rejection.message
    );
    assert!(rejection.message.contains(SKIP_CONTAINERS_ANNOTATION));
}

#[test]
fn replaces_a_mount_of_its_volume_at_another_path() {
    let volume = volume_name();
    let input = pod(
        json!([{"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": volume, "mountPath": "/elsewhere"}]}]),
    );
    let (output, _) = run(&settings(), &input, &default_sa());
    assert_eq!(
        output["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data"}, {"name": volume, "mountPath": "/var/run/secrets/azure/wi", "readOnly": true}])
    );
}

#[test]
fn replaces_in_place_an_earlier_reserved_mount_at_the_token_path_after_other_mounts() {
    let volume = volume_name();
    let earlier = "azure-workload-identity-reserved-00000000000000000000000000000";
    let input = pod(json!([{"name": "app", "volumeMounts": [
        {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
        {"name": "data", "mountPath": "/data"},
        {"name": earlier, "mountPath": "/var/run/secrets/azure/wi", "readOnly": true},
        {"name": "logs", "mountPath": "/logs"}
    ]}]));
    let (output, _) = run(&settings(), &input, &default_sa());
    assert_eq!(
        output["spec"]["containers"][0]["volumeMounts"],
        json!([
            {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
            {"name": "data", "mountPath": "/data"},
            {"name": volume, "mountPath": "/var/run/secrets/azure/wi", "readOnly": true},
            {"name": "logs", "mountPath": "/logs"}
        ])
    );
}

pub(super) fn assert_reinvocation_is_a_no_op(
    setup: &impl Setup,
    input: &Value,
    account: &ServiceAccountMeta,
) {
    let (once, _) = run(setup, input, account);
    let raw = once.to_string();
    let view = PodView::from_json(&raw).expect("decodes");
    let (settings, runtime) = setup.parts();
    let again = plan(settings, runtime, &view, account).expect("admitted again");
    assert_eq!(again.ops, vec![], "second invocation changed the pod");
}

#[test]
fn reinvocation_on_its_own_output_changes_nothing() {
    let mut with_everything = pod(
        json!([{"name": "a", "env": [{"name": "X", "value": "1"}]}, {"name": "b", "volumeMounts": []}]),
    );
    with_everything["spec"]["initContainers"] = json!([{"name": "init"}]);
    with_everything["spec"]["volumes"] = json!([{"name": "data", "emptyDir": {}}]);
    let cases = [
        (settings(), one_container()),
        (settings(), with_everything),
        (settings(), identity_binding_pod()),
        (
            with_ca(ClusterCa::ConfigMap("kube-root-ca.crt".into())),
            identity_binding_pod(),
        ),
        (
            with_ca(ClusterCa::ClusterTrustBundle {
                signer_name: "s/x".into(),
                label_selector: json!({"matchLabels": {"a": "b"}}),
            }),
            identity_binding_pod(),
        ),
        (
            with_ca(ClusterCa::Data("pem".into())),
            identity_binding_pod(),
        ),
    ];
    for (settings, input) in cases {
        assert_reinvocation_is_a_no_op(&settings, &input, &default_sa());
        assert_reinvocation_is_a_no_op(&settings, &input, &sa(&[]));
    }
}

#[test]
fn reinvocation_after_server_defaulting_changes_nothing() {
    let (mut once, _) = run(&settings(), &one_container(), &default_sa());
    once["spec"]["volumes"][0]["projected"]["defaultMode"] = json!(420);
    let raw = once.to_string();
    let view = PodView::from_json(&raw).expect("decodes");
    assert_eq!(
        plan(&settings(), Runtime::default(), &view, &default_sa()).map(|m| m.ops),
        Ok(vec![])
    );
}

#[test]
fn reinvocation_after_the_name_was_set_reuses_the_volume() {
    let mut input = one_container();
    input["metadata"] = json!({"generateName": "web-"});
    let (mut once, _) = run(&settings(), &input, &default_sa());
    once["metadata"]["name"] = json!("web-abcde");
    let raw = once.to_string();
    let view = PodView::from_json(&raw).expect("decodes");
    assert_eq!(
        plan(&settings(), Runtime::default(), &view, &default_sa()).map(|m| m.ops),
        Ok(vec![]),
        "W12"
    );
}

#[test]
fn reinvocation_with_another_service_account_refreshes_injected_values() {
    let (once, _) = run(&settings(), &one_container(), &default_sa());
    let mut user_set = once.clone();
    user_set["spec"]["containers"][0]["env"][0]["value"] = json!("users-own");
    let other = sa(&[
        (CLIENT_ID_ANNOTATION, "client-2"),
        (TENANT_ID_ANNOTATION, "tenant-2"),
        (TOKEN_EXPIRATION_ANNOTATION, "7200"),
    ]);

    let (twice, _) = run(&settings(), &once, &other);
    let env = env_of(&twice, "containers", 0);
    assert_eq!(env[0], ("AZURE_CLIENT_ID".into(), "client-2".into()));
    assert_eq!(env[1], ("AZURE_TENANT_ID".into(), "tenant-2".into()));
    assert_eq!(env.len(), 4);
    assert_eq!(expiration_of(&twice), 7200);
    assert_eq!(
        twice["metadata"]["annotations"][INJECTED_IDENTITY_ANNOTATION],
        r#"{"clientID":"client-2","tenantID":"tenant-2"}"#
    );
    assert_reinvocation_is_a_no_op(&settings(), &twice, &other);

    // A value the user set themselves is not the recorded one, so it stays.
    let (kept, _) = run(&settings(), &user_set, &other);
    assert_eq!(
        env_of(&kept, "containers", 0)[0],
        ("AZURE_CLIENT_ID".into(), "users-own".into())
    );
}

#[test]
fn reinvocation_with_a_service_account_without_client_id_removes_the_injected_one() {
    let mut input = pod(json!([{"name": "app", "env": [{"name": "KEEP", "value": "1"}]}]));
    input["spec"]["initContainers"] = json!([{"name": "init"}]);
    let (once, _) = run(&settings(), &input, &default_sa());
    let (twice, _) = run(&settings(), &once, &sa(&[]));
    for (field, expected) in [
        (
            "initContainers",
            vec![
                "AZURE_TENANT_ID",
                "AZURE_FEDERATED_TOKEN_FILE",
                "AZURE_AUTHORITY_HOST",
            ],
        ),
        (
            "containers",
            vec![
                "KEEP",
                "AZURE_TENANT_ID",
                "AZURE_FEDERATED_TOKEN_FILE",
                "AZURE_AUTHORITY_HOST",
            ],
        ),
    ] {
        assert_eq!(names(&env_of(&twice, field, 0)), expected, "{field}");
    }
}

#[test]
fn reinvocation_switching_to_identity_binding_rebuilds_the_sources_only() {
    let settings = with_ca(ClusterCa::ConfigMap("kube-root-ca.crt".into()));
    let (mut once, _) = run(&settings, &one_container(), &default_sa());
    once["spec"]["volumes"][0]["projected"]["defaultMode"] = json!(420);
    once["metadata"]["annotations"]["azure.workload.identity/use-identity-binding"] = json!("true");
    let (twice, _) = run(&settings, &once, &default_sa());
    let projected = &twice["spec"]["volumes"][0]["projected"];
    assert_eq!(projected["defaultMode"], 420);
    assert_eq!(projected["sources"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        projected["sources"][0]["serviceAccountToken"]["audience"],
        "api://AKSIdentityBinding"
    );
}

#[test]
fn a_pod_that_already_has_every_value_gets_no_patch() {
    // Written by hand (or by another webhook): complete, but with no record of this webhook.
    let (injected, _) = run(&settings(), &one_container(), &default_sa());
    let mut complete = injected.clone();
    complete["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("annotations");
    let raw = complete.to_string();
    let view = PodView::from_json(&raw).expect("decodes");
    let plan = plan(&settings(), Runtime::default(), &view, &default_sa()).expect("admitted");
    assert_eq!(plan.ops, vec![], "nothing to inject, so no record either");
}

#[test]
fn the_deprecated_service_account_field_is_read() {
    let view = |spec: Value| {
        let raw = json!({"spec": spec}).to_string();
        PodView::from_json(&raw)
            .expect("decodes")
            .service_account_name()
            .to_owned()
    };
    assert_eq!(view(json!({"serviceAccount": "old"})), "old");
    assert_eq!(
        view(json!({"serviceAccountName": "new", "serviceAccount": "old"})),
        "new"
    );
    assert_eq!(
        view(json!({"serviceAccountName": "", "serviceAccount": "old"})),
        "old"
    );
    assert_eq!(view(json!({})), "default");
}
