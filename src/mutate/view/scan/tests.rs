use serde_json::json;

use super::*;

/// The scanner's reading of a whole pod text, if it takes it.
fn scanned(text: &str) -> Option<PodView<'_>> {
    let mut s = Scanner::new(text.as_bytes());
    let pod = PodView::scan(&mut s)?;
    s.finish()?;
    Some(pod)
}

/// Scanned, the pod must read exactly as serde reads it.
fn same_as_serde(text: &str) -> bool {
    let Some(pod) = scanned(text) else {
        return false;
    };
    let reference = PodView::from_json(text).expect("serde decodes what the scanner takes");
    assert_eq!(format!("{pod:?}"), format!("{reference:?}"), "{text}");
    true
}

fn full_pod() -> serde_json::Value {
    json!({
        "kind": "Pod",
        "metadata": {
            "name": "web-0",
            "generateName": "web-",
            "namespace": "shop",
            "uid": "u",
            "labels": {"app": "web", "azure.workload.identity/use": "true"},
            "annotations": {
                "azure.workload.identity/skip-containers": "sidecar;other",
                "kubectl.kubernetes.io/last-applied-configuration": "{\"escaped\": \"json\"}",
                "azure.workload.identity/inject-proxy-sidecar": "true"
            },
            "managedFields": [{"fieldsV1": {"f:metadata": {".": {}}}}]
        },
        "spec": {
            "serviceAccountName": "workload",
            "serviceAccount": "workload",
            "hostNetwork": false,
            "initContainers": [{
                "name": "init",
                "restartPolicy": "Always",
                "env": [{"name": "AZURE_CLIENT_ID", "value": "x"}]
            }],
            "containers": [{
                "name": "app",
                "image": "img",
                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                "env": [
                    {"name": "PLAIN", "value": "v\n"},
                    {"value": "before the name", "name": "AZURE_TENANT_ID"},
                    {"name": "AZURE_CLIENT_ID", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
                    {"name": "AZURE_AUTHORITY_HOST", "valueFrom": null, "value": null},
                    {"name": "AZURE_X", "name": "AZURE_Y", "value": "last name wins"}
                ],
                "volumeMounts": [
                    {"name": "token", "mountPath": "/var/run/secrets", "readOnly": true, "subPath": "a"},
                    {"name": "config", "mountPath": "/etc/config", "readOnly": null}
                ],
                "resources": {"limits": {"cpu": 1.5e0, "memory": "1Gi"}}
            }],
            "volumes": [
                {"name": "config", "configMap": {"name": "c"}},
                {"name": "azure-identity-token", "projected": {"sources": [{"serviceAccountToken": {"path": "t", "expirationSeconds": 3600}}]}}
            ]
        },
        "status": {}
    })
}

#[test]
fn reads_a_full_pod_as_serde_does() {
    let text = full_pod().to_string();
    assert!(same_as_serde(&text));
    let pretty = serde_json::to_string_pretty(&full_pod()).expect("serialises");
    assert!(same_as_serde(&pretty));
}

#[test]
fn nulls_and_empties_read_as_serde_reads_them() {
    for pod in [
        json!({}),
        json!({"metadata": null, "spec": null}),
        json!({"metadata": {"name": null, "annotations": null, "labels": {}}}),
        json!({"spec": {"containers": null, "initContainers": [], "volumes": null, "hostNetwork": null}}),
        json!({"spec": {"containers": [{"name": "a", "env": null, "volumeMounts": null, "ports": null, "restartPolicy": null}]}}),
        json!({"spec": {"containers": [{"name": "a", "env": [], "ports": []}], "volumes": [{"name": "v", "projected": null}]}}),
        json!({"spec": {"containers": [{"name": "a", "env": [{"name": "AZURE_A"}, {}]}]}}),
    ] {
        assert!(same_as_serde(&pod.to_string()), "{pod}");
    }
}

#[test]
fn declines_where_serde_refuses_or_must_decode() {
    let declined = [
        // A repeated field: serde's derive refuses it.
        r#"{"metadata": {}, "metadata": {}}"#,
        r#"{"spec": {"containers": [{"name": "a", "name": "b"}]}}"#,
        r#"{"spec": {"volumes": [{"name": "v", "projected": {}, "projected": {}}]}}"#,
        // null where a string is required.
        r#"{"spec": {"containers": [{"name": null}]}}"#,
        r#"{"metadata": {"annotations": {"azure.workload.identity/use": null}}}"#,
        // Wrong types.
        r#"{"spec": {"hostNetwork": "true"}}"#,
        r#"{"spec": {"containers": {}}}"#,
        r#"{"metadata": []}"#,
        // Escapes in what is kept: serde decodes them.
        r#"{"metadata": {"name": "a\u0062"}}"#,
        r#"{"spec": {"containers": [{"name": "a", "env": [{"name": "AZURE_A", "value": "x\ty"}]}]}}"#,
        r#"{"metadata": {"labels": {"azure.workload.identity\/use": "true"}}}"#,
    ];
    for text in declined {
        assert!(scanned(text).is_none(), "{text}");
    }
}

#[test]
fn skips_unread_values_unchecked_as_serde_does() {
    // Neither reads a skipped annotation's value as a string, so neither checks its UTF-8.
    let mut text = br#"{"metadata": {"annotations": {"other": ""#.to_vec();
    text.extend_from_slice(b"\xff\xfe");
    text.extend_from_slice(br#""}}}"#);
    let mut s = Scanner::new(&text);
    assert!(PodView::scan(&mut s).is_some());
    assert!(serde_json::from_slice::<PodView>(&text).is_ok());
}
