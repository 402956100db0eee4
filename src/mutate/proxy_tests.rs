//! Table tests for the proxy sidecar: every patch is applied with `json-patch` to the input pod, so
//! the index handling of the prepend is checked on real documents.

use serde_json::{json, Value};

use super::tests::{
    assert_reinvocation_is_a_no_op, default_sa, env_of, names, one_container, pod, reject, run,
    settings, try_run,
};
use super::*;
use crate::mutate::denial::DenyReason;
use crate::mutate::settings::{ContainerResources, ProxySettings, ResourceList};

const IMAGE: &str = "example.test/proxy:v1";
const INIT_IMAGE: &str = "example.test/proxy-init:v1";

fn proxy_settings(native: bool) -> (Settings, Runtime) {
    let settings = Settings {
        proxy: ProxySettings {
            image: IMAGE.into(),
            init_image: INIT_IMAGE.into(),
            log_level: "debug".into(),
            ..ProxySettings::default()
        },
        ..settings()
    };
    let runtime = Runtime {
        native_sidecars: native,
    };
    (settings, runtime)
}

fn with_annotations(mut input: Value, annotations: Value) -> Value {
    input["metadata"]["annotations"] = annotations;
    input
}

fn proxied(input: Value) -> Value {
    with_annotations(input, json!({INJECT_PROXY_ANNOTATION: "true"}))
}

fn expected_init(port: u16) -> Value {
    json!({
        "name": "azwi-proxy-init",
        "image": INIT_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "env": [{"name": "PROXY_PORT", "value": port.to_string()}],
        "securityContext": {
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
            "privileged": true,
            "runAsNonRoot": false,
            "runAsUser": 0
        }
    })
}

fn expected_sidecar(port: u16, level: &str, native: bool) -> Value {
    let port_arg = format!("--proxy-port={port}");
    let level_arg = format!("--log-level={level}");
    let mut sidecar = json!({
        "name": "azwi-proxy",
        "image": IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "args": [port_arg, level_arg],
        "ports": [{"containerPort": port}],
        "lifecycle": {"postStart": {"exec": {"command": ["/proxy", port_arg, "--probe", level_arg]}}},
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "privileged": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true
        }
    });
    if native {
        sidecar["restartPolicy"] = json!("Always");
    }
    sidecar
}

fn container_names(pod: &Value, field: &str) -> Vec<String> {
    pod["spec"][field]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| c["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn find<'v>(pod: &'v Value, field: &str, name: &str) -> &'v Value {
    pod["spec"][field]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["name"] == name))
        .unwrap_or(&Value::Null)
}

#[test]
fn injects_the_containers_exactly_as_upstream_in_both_modes() {
    for native in [true, false] {
        let mut input = proxied(one_container());
        input["spec"]["initContainers"] = json!([{"name": "setup"}]);
        let (output, mutation) = run(&proxy_settings(native), &input, &default_sa());
        let (sidecar_field, sidecar_index) = if native {
            ("initContainers", 0)
        } else {
            ("containers", 0)
        };
        assert_eq!(
            output["spec"][sidecar_field][sidecar_index],
            expected_sidecar(8000, "debug", native),
            "native {native}"
        );
        assert_eq!(
            output["spec"]["initContainers"]
                .as_array()
                .and_then(|l| l.last()),
            Some(&expected_init(8000)),
            "native {native}"
        );
        assert!(mutation.warnings.is_empty(), "{:?}", mutation.warnings);
    }
}

/// (native, initContainers of the input, expected init names, expected container names)
type PlacementCase = (
    bool,
    Option<Value>,
    &'static [&'static str],
    &'static [&'static str],
);

#[test]
fn places_the_containers_and_keeps_user_ops_on_user_containers() {
    // The user init container has env and a mount of the webhook's volume at another path, so
    // index-addressed `replace` operations are emitted for it before the insert at index 0.
    let volume = derived_volume_name("web-0");
    let user_init = json!({"name": "setup", "env": [{"name": "X", "value": "1"}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": volume, "mountPath": "/old"}]});
    let cases: [PlacementCase; 8] = [
        (true, None, &["azwi-proxy", "azwi-proxy-init"], &["a", "b"]),
        (
            true,
            Some(Value::Null),
            &["azwi-proxy", "azwi-proxy-init"],
            &["a", "b"],
        ),
        (
            true,
            Some(json!([])),
            &["azwi-proxy", "azwi-proxy-init"],
            &["a", "b"],
        ),
        (
            true,
            Some(json!([user_init.clone(), {"name": "second"}])),
            &["azwi-proxy", "setup", "second", "azwi-proxy-init"],
            &["a", "b"],
        ),
        (false, None, &["azwi-proxy-init"], &["azwi-proxy", "a", "b"]),
        (
            false,
            Some(Value::Null),
            &["azwi-proxy-init"],
            &["azwi-proxy", "a", "b"],
        ),
        (
            false,
            Some(json!([])),
            &["azwi-proxy-init"],
            &["azwi-proxy", "a", "b"],
        ),
        (
            false,
            Some(json!([user_init.clone(), {"name": "second"}])),
            &["setup", "second", "azwi-proxy-init"],
            &["azwi-proxy", "a", "b"],
        ),
    ];
    for (native, init, want_init, want_containers) in cases {
        let mut input = proxied(pod(
            json!([{"name": "a", "env": [{"name": "A", "value": "1"}]}, {"name": "b"}]),
        ));
        if let Some(init) = init.clone() {
            input["spec"]["initContainers"] = init;
        }
        let (output, _) = run(&proxy_settings(native), &input, &default_sa());
        let label = format!("native {native}, init {init:?}");
        assert_eq!(
            container_names(&output, "initContainers"),
            want_init,
            "{label}"
        );
        assert_eq!(
            container_names(&output, "containers"),
            want_containers,
            "{label}"
        );
        for (field, name) in [
            ("containers", "a"),
            ("containers", "b"),
            ("initContainers", "setup"),
            ("initContainers", "second"),
        ] {
            let container = find(&output, field, name);
            if container.is_null() {
                continue;
            }
            assert!(
                container["env"].as_array().is_some_and(|e| e.len() >= 4),
                "{label}: {name}"
            );
            let mounts = container["volumeMounts"].as_array().map(Vec::len);
            assert_eq!(
                mounts,
                Some(if name == "setup" { 2 } else { 1 }),
                "{label}: {name}"
            );
        }
        let setup = find(&output, "initContainers", "setup");
        if !setup.is_null() {
            assert_eq!(
                setup["env"][0],
                json!({"name": "X", "value": "1"}),
                "{label}"
            );
            assert_eq!(setup["volumeMounts"][1]["mountPath"], MOUNT_PATH, "{label}");
        }
        assert_eq!(
            names(&env_of(&output, "containers", usize::from(!native)))[0],
            "A",
            "{label}"
        );
    }
}

#[test]
fn proxy_containers_get_no_azure_env_or_mount() {
    for native in [true, false] {
        let (output, _) = run(
            &proxy_settings(native),
            &proxied(one_container()),
            &default_sa(),
        );
        let field = if native {
            "initContainers"
        } else {
            "containers"
        };
        let sidecar = find(&output, field, "azwi-proxy");
        let init = find(&output, "initContainers", "azwi-proxy-init");
        assert!(
            sidecar.get("env").is_none() && sidecar.get("volumeMounts").is_none(),
            "W09"
        );
        assert_eq!(
            init["env"],
            json!([{"name": "PROXY_PORT", "value": "8000"}]),
            "W09"
        );
        assert!(init.get("volumeMounts").is_none(), "W09");
    }
}

#[test]
fn existing_proxy_containers_are_kept_and_not_mutated() {
    // A pod injected earlier (or by another replica) with another port: left exactly as it is.
    let mut input = proxied(pod(
        json!([{"name": "azwi-proxy", "image": "old"}, {"name": "app"}]),
    ));
    input["spec"]["initContainers"] = json!([{"name": "azwi-proxy-init", "image": "old-init"}]);
    let (output, _) = run(&proxy_settings(false), &input, &default_sa());
    assert_eq!(
        output["spec"]["initContainers"],
        input["spec"]["initContainers"]
    );
    assert_eq!(
        output["spec"]["containers"][0],
        input["spec"]["containers"][0]
    );
    assert_eq!(env_of(&output, "containers", 1).len(), 4);

    // Only the missing one is added.
    let mut partial = proxied(one_container());
    partial["spec"]["initContainers"] = json!([{"name": "azwi-proxy-init"}]);
    let (output, _) = run(&proxy_settings(true), &partial, &default_sa());
    assert_eq!(
        container_names(&output, "initContainers"),
        ["azwi-proxy", "azwi-proxy-init"]
    );
    assert_eq!(
        output["spec"]["initContainers"][1],
        json!({"name": "azwi-proxy-init"})
    );
}

#[test]
fn trigger_must_be_true_in_any_case() {
    let cases: [(Option<&str>, bool, bool); 10] = [
        (None, false, false),
        (Some("true"), true, false),
        (Some("TRUE"), true, false),
        (Some("True"), true, false),
        (Some("false"), false, false),
        (Some("False"), false, false),
        (Some(""), false, true),
        (Some("yes"), false, true),
        (Some("1"), false, true),
        (Some(" true"), false, true),
    ];
    for (value, injects, warns) in cases {
        let input = match value {
            Some(v) => with_annotations(one_container(), json!({INJECT_PROXY_ANNOTATION: v})),
            None => one_container(),
        };
        let (output, mutation) = run(&proxy_settings(false), &input, &default_sa());
        assert_eq!(
            output["spec"]["containers"][0]["name"] == "azwi-proxy",
            injects,
            "{value:?}"
        );
        assert_eq!(
            output["spec"].get("initContainers").is_some(),
            injects,
            "{value:?}"
        );
        assert_eq!(
            mutation.warnings.len(),
            usize::from(warns),
            "{value:?}: {:?}",
            mutation.warnings
        );
        if warns {
            assert!(mutation.warnings[0].contains(INJECT_PROXY_ANNOTATION));
        }
    }
}

#[test]
fn port_is_parsed_and_range_checked() {
    let cases: [(Option<&str>, Result<u16, &str>); 11] = [
        (None, Ok(8000)),
        (Some("9000"), Ok(9000)),
        (Some("+9000"), Ok(9000)),
        (Some("1"), Ok(1)),
        (Some("65535"), Ok(65535)),
        (Some("0"), Err("out of range")),
        (Some("65536"), Err("out of range")),
        (Some("-1"), Err("out of range")),
        (Some("99999999999999999999"), Err("not a whole number")),
        (Some("80a"), Err("not a whole number")),
        (Some(""), Err("not a whole number")),
    ];
    for (value, expected) in cases {
        let mut annotations = json!({INJECT_PROXY_ANNOTATION: "true"});
        if let Some(v) = value {
            annotations[PROXY_PORT_ANNOTATION] = json!(v);
        }
        let input = with_annotations(one_container(), annotations);
        match (
            try_run(&proxy_settings(true), &input, &default_sa()),
            expected,
        ) {
            (Ok((output, _)), Ok(port)) => {
                assert_eq!(
                    output["spec"]["initContainers"][0],
                    expected_sidecar(port, "debug", true)
                );
                assert_eq!(output["spec"]["initContainers"][1], expected_init(port));
            }
            (Err(rejection), Err(message)) => {
                assert_eq!(rejection.reason, DenyReason::InvalidPod);
                for part in [
                    message,
                    PROXY_PORT_ANNOTATION,
                    &format!("{:?}", value.unwrap_or_default()),
                ] {
                    assert!(
                        rejection.message.contains(part),
                        "{} !~ {part}",
                        rejection.message
                    );
                }
            }
            (got, _) => panic!("{value:?}: unexpected {got:?}"),
        }
    }
}

#[test]
fn port_annotation_is_ignored_without_injection() {
    let input = with_annotations(
        one_container(),
        json!({INJECT_PROXY_ANNOTATION: "false", PROXY_PORT_ANNOTATION: "nope"}),
    );
    let (output, _) = run(&proxy_settings(true), &input, &default_sa());
    assert!(output["spec"].get("initContainers").is_none());
}

#[test]
fn host_network_is_rejected_only_with_injection() {
    let mut input = proxied(one_container());
    input["spec"]["hostNetwork"] = json!(true);
    let rejection = reject(&proxy_settings(false), &input, &default_sa());
    assert_eq!(rejection.reason, DenyReason::InvalidPod);
    assert!(
        rejection
            .message
            .starts_with("hostNetwork is set to true, cannot inject proxy sidecar"),
        "{}",
        rejection.message
    );
    input["spec"]["hostNetwork"] = json!(false);
    run(&proxy_settings(false), &input, &default_sa());
    let mut no_proxy = one_container();
    no_proxy["spec"]["hostNetwork"] = json!(true);
    run(&proxy_settings(false), &no_proxy, &default_sa());
}

#[test]
fn proxy_errors_come_first() {
    let mut input = with_annotations(
        one_container(),
        json!({INJECT_PROXY_ANNOTATION: "true", PROXY_PORT_ANNOTATION: "x", TOKEN_EXPIRATION_ANNOTATION: "1"}),
    );
    let rejection = reject(&proxy_settings(false), &input, &default_sa());
    assert!(
        rejection.message.contains(PROXY_PORT_ANNOTATION),
        "{}",
        rejection.message
    );
    input["spec"]["hostNetwork"] = json!(true);
    let rejection = reject(&proxy_settings(false), &input, &default_sa());
    assert!(
        rejection.message.contains("hostNetwork"),
        "{}",
        rejection.message
    );
}

#[test]
fn rejects_user_containers_with_proxy_names_in_the_other_list() {
    let cases: [(bool, &str, &str); 4] = [
        (true, "containers", "azwi-proxy"),
        (false, "initContainers", "azwi-proxy"),
        (true, "containers", "azwi-proxy-init"),
        (false, "containers", "azwi-proxy-init"),
    ];
    for (native, field, name) in cases {
        let mut input = proxied(pod(json!([{"name": "app"}])));
        input["spec"][field] = json!([{"name": name}, {"name": "other"}]);
        let rejection = reject(&proxy_settings(native), &input, &default_sa());
        assert_eq!(rejection.reason, DenyReason::InvalidPod);
        for part in [
            &format!("{name:?}"),
            &format!("spec.{field}"),
            INJECT_PROXY_ANNOTATION,
        ] {
            assert!(
                rejection.message.contains(part),
                "{} !~ {part}",
                rejection.message
            );
        }
    }
    // Without the annotation such a container is an ordinary user container.
    let input = pod(json!([{"name": "azwi-proxy"}]));
    let (output, _) = run(&proxy_settings(true), &input, &default_sa());
    assert_eq!(env_of(&output, "containers", 0).len(), 4);
}

#[test]
fn reinvocation_on_its_own_output_changes_nothing() {
    let mut with_init = proxied(pod(json!([{"name": "a"}, {"name": "b", "env": []}])));
    with_init["spec"]["initContainers"] = json!([{"name": "setup"}]);
    let mut null_init = proxied(one_container());
    null_init["spec"]["initContainers"] = Value::Null;
    let custom_port = with_annotations(
        one_container(),
        json!({INJECT_PROXY_ANNOTATION: "TRUE", PROXY_PORT_ANNOTATION: "+9090"}),
    );
    for native in [true, false] {
        for input in [
            proxied(one_container()),
            with_init.clone(),
            null_init.clone(),
            custom_port.clone(),
        ] {
            assert_reinvocation_is_a_no_op(&proxy_settings(native), &input, &default_sa());
        }
    }
}

#[test]
fn skip_list_still_applies_to_user_containers() {
    let input = with_annotations(
        pod(json!([{"name": "a"}, {"name": "b"}])),
        json!({INJECT_PROXY_ANNOTATION: "true", SKIP_CONTAINERS_ANNOTATION: "a;azwi-proxy"}),
    );
    for native in [true, false] {
        let (output, mutation) = run(&proxy_settings(native), &input, &default_sa());
        assert!(find(&output, "containers", "a").get("env").is_none());
        assert_eq!(
            find(&output, "containers", "b")["env"]
                .as_array()
                .map(Vec::len),
            Some(4)
        );
        // The proxy is the webhook's own container, so naming it is not a mistake worth a warning.
        assert!(mutation.warnings.is_empty(), "{:?}", mutation.warnings);
    }
}

#[test]
fn empty_log_level_passes_info() {
    let mut settings = proxy_settings(false);
    settings.0.proxy.log_level.clear();
    let (output, _) = run(&settings, &proxied(one_container()), &default_sa());
    assert_eq!(
        output["spec"]["containers"][0],
        expected_sidecar(8000, "info", false),
        "W21"
    );
}

fn quantities(cpu: Option<&str>, memory: Option<&str>) -> ResourceList {
    ResourceList {
        cpu: cpu.map(str::to_owned),
        memory: memory.map(str::to_owned),
    }
}

/// (sidecar settings, init settings, the sidecar's expected `resources`, the init container's)
type ResourcesCase = (ContainerResources, ContainerResources, Value, Value);

#[test]
fn proxy_containers_get_only_the_configured_resources() {
    let none = ContainerResources::default;
    let requests_only = ContainerResources {
        requests: quantities(Some("10m"), Some("16Mi")),
        ..none()
    };
    let limits_only = ContainerResources {
        limits: quantities(None, Some("64Mi")),
        ..none()
    };
    let full = ContainerResources {
        requests: quantities(Some("50m"), Some("32Mi")),
        limits: quantities(Some("1"), Some("128Mi")),
    };
    let cases: [ResourcesCase; 5] = [
        (none(), none(), Value::Null, Value::Null),
        (
            requests_only.clone(),
            none(),
            json!({"requests": {"cpu": "10m", "memory": "16Mi"}}),
            Value::Null,
        ),
        (
            none(),
            limits_only,
            Value::Null,
            json!({"limits": {"memory": "64Mi"}}),
        ),
        (
            full.clone(),
            requests_only,
            json!({"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}}),
            json!({"requests": {"cpu": "10m", "memory": "16Mi"}}),
        ),
        (
            ContainerResources {
                requests: quantities(Some("0.1"), None),
                limits: quantities(None, Some("1Gi")),
            },
            full,
            json!({"requests": {"cpu": "0.1"}, "limits": {"memory": "1Gi"}}),
            json!({"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}}),
        ),
    ];
    for (sidecar, init, want_sidecar, want_init) in cases {
        for native in [true, false] {
            let mut settings = proxy_settings(native);
            settings.0.proxy.resources = sidecar.clone();
            settings.0.proxy.init_resources = init.clone();
            let input = proxied(one_container());
            let (output, _) = run(&settings, &input, &default_sa());
            let sidecar_field = if native {
                "initContainers"
            } else {
                "containers"
            };
            let label = format!("native {native}, {sidecar:?}, {init:?}");
            let injected_sidecar = find(&output, sidecar_field, "azwi-proxy");
            let injected_init = find(&output, "initContainers", "azwi-proxy-init");
            assert_eq!(injected_sidecar["resources"], want_sidecar, "{label}");
            assert_eq!(injected_init["resources"], want_init, "{label}");
            // Nothing else about the containers changes.
            let mut without = injected_sidecar.clone();
            if let Some(fields) = without.as_object_mut() {
                fields.remove("resources");
            }
            assert_eq!(without, expected_sidecar(8000, "debug", native), "{label}");
            assert_reinvocation_is_a_no_op(&settings, &input, &default_sa());
        }
    }
}

/// (native, list holding the user container, its `ports`, port annotation, refused)
type PortCase = (bool, &'static str, Value, Option<&'static str>, bool);

#[test]
fn rejects_a_declared_tcp_port_equal_to_the_proxy_port() {
    let cases: [PortCase; 13] = [
        (
            false,
            "containers",
            json!([{"containerPort": 8000}]),
            None,
            true,
        ),
        (
            true,
            "containers",
            json!([{"name": "http", "containerPort": 8000, "protocol": "TCP"}]),
            None,
            true,
        ),
        // A one-shot init container has exited before a classic sidecar starts.
        (
            false,
            "initContainers",
            json!([{"containerPort": 8000}]),
            None,
            false,
        ),
        (
            true,
            "initContainers",
            json!([{"containerPort": 8000, "protocol": "TCP"}]),
            None,
            true,
        ),
        (
            true,
            "containers",
            json!([{"containerPort": 8080}, {"containerPort": 9090}]),
            Some("9090"),
            true,
        ),
        (
            true,
            "initContainers",
            json!([{"containerPort": 9090}]),
            Some("+9090"),
            true,
        ),
        // The default port is free once the proxy moves elsewhere.
        (
            false,
            "containers",
            json!([{"containerPort": 8000}]),
            Some("9090"),
            false,
        ),
        // The proxy listens on TCP only.
        (
            true,
            "containers",
            json!([{"containerPort": 8000, "protocol": "UDP"}]),
            None,
            false,
        ),
        (
            false,
            "initContainers",
            json!([{"containerPort": 8000, "protocol": "SCTP"}]),
            None,
            false,
        ),
        (
            true,
            "containers",
            json!([{"containerPort": 8000, "protocol": "UDP"}, {"containerPort": 8000}]),
            None,
            true,
        ),
        // A host port is on the node, not in the pod's network namespace.
        (
            false,
            "containers",
            json!([{"containerPort": 8080, "hostPort": 8000}]),
            None,
            false,
        ),
        (true, "containers", Value::Null, None, false),
        (false, "initContainers", json!([]), None, false),
    ];
    for (native, field, ports, port, refused) in cases {
        let mut annotations = json!({INJECT_PROXY_ANNOTATION: "true"});
        if let Some(port) = port {
            annotations[PROXY_PORT_ANNOTATION] = json!(port);
        }
        let mut input = with_annotations(pod(json!([{"name": "main"}])), annotations);
        input["spec"][field] = json!([{"name": "other"}, {"name": "app", "ports": ports}]);
        let label = format!("native {native}, {field}, {ports}, {port:?}");
        match try_run(&proxy_settings(native), &input, &default_sa()) {
            Err(rejection) if refused => {
                assert_eq!(rejection.reason, DenyReason::InvalidPod, "{label}");
                let number = port.unwrap_or("8000").trim_start_matches('+');
                for part in [
                    "container \"app\"",
                    &format!("spec.{field}"),
                    &format!("port {number},"),
                    "azwi-proxy sidecar",
                    PROXY_PORT_ANNOTATION,
                ] {
                    assert!(
                        rejection.message.contains(part),
                        "{label}: {} !~ {part}",
                        rejection.message
                    );
                }
            }
            Ok((output, _)) if !refused => {
                let sidecar_field = if native {
                    "initContainers"
                } else {
                    "containers"
                };
                assert!(
                    !find(&output, sidecar_field, "azwi-proxy").is_null(),
                    "{label}"
                );
                assert_eq!(find(&output, field, "app")["ports"], ports, "{label}");
            }
            got => panic!("{label}: unexpected {got:?}"),
        }
    }

    let mut input = proxied(pod(
        json!([{"name": "app", "ports": [{"containerPort": 8000}]}]),
    ));
    assert_eq!(
        reject(&proxy_settings(false), &input, &default_sa()).message,
        "container \"app\" in spec.containers already declares port 8000, which the azwi-proxy \
         sidecar listens on: pick another port with azure.workload.identity/proxy-sidecar-port"
    );
    // Skipping a container keeps it out of the mutation, not off the pod's network.
    input["metadata"]["annotations"][SKIP_CONTAINERS_ANNOTATION] = json!("app");
    assert_eq!(
        reject(&proxy_settings(true), &input, &default_sa()).reason,
        DenyReason::InvalidPod
    );
}

#[test]
fn a_native_sidecar_of_the_user_clashes_in_classic_mode_too() {
    let mut input = proxied(pod(json!([{"name": "main"}])));
    input["spec"]["initContainers"] = json!([{"name": "mesh", "restartPolicy": "Always",
                                              "ports": [{"containerPort": 8000}]}]);
    let rejection = reject(&proxy_settings(false), &input, &default_sa());
    assert!(
        rejection
            .message
            .contains("container \"mesh\" in spec.initContainers"),
        "{}",
        rejection.message
    );
    input["spec"]["initContainers"][0]["restartPolicy"] = json!("OnFailure");
    assert!(try_run(&proxy_settings(false), &input, &default_sa()).is_ok());
}

#[test]
fn reinvocation_of_an_injected_pod_is_not_refused_for_the_proxys_own_port() {
    // The injected sidecar declares the proxy port itself; user ports elsewhere are untouched.
    let mut input = proxied(pod(
        json!([{"name": "app", "ports": [{"containerPort": 8080}, {"containerPort": 8000, "protocol": "UDP"}]}]),
    ));
    input["spec"]["initContainers"] =
        json!([{"name": "setup", "ports": [{"containerPort": 9000}]}]);
    let custom_port = with_annotations(
        pod(json!([{"name": "app", "ports": [{"containerPort": 8000}]}])),
        json!({INJECT_PROXY_ANNOTATION: "true", PROXY_PORT_ANNOTATION: "9090"}),
    );
    for native in [true, false] {
        for input in [input.clone(), custom_port.clone()] {
            assert_reinvocation_is_a_no_op(&proxy_settings(native), &input, &default_sa());
        }
    }
}

#[test]
fn ports_are_never_read_without_injection() {
    // Even ports that could not be read are left alone when there is no proxy to compare them with.
    let containers = json!([
        {"name": "app", "ports": [{"containerPort": 8000}]},
        {"name": "odd", "ports": [{"containerPort": "8000"}]}
    ]);
    for annotations in [
        None,
        Some(json!({INJECT_PROXY_ANNOTATION: "false"})),
        Some(json!({INJECT_PROXY_ANNOTATION: "yes", PROXY_PORT_ANNOTATION: "8000"})),
    ] {
        let input = match annotations.clone() {
            Some(annotations) => with_annotations(pod(containers.clone()), annotations),
            None => pod(containers.clone()),
        };
        let (output, _) = run(&proxy_settings(true), &input, &default_sa());
        assert!(
            output["spec"].get("initContainers").is_none(),
            "{annotations:?}"
        );
        assert_eq!(
            output["spec"]["containers"][1]["ports"],
            containers[1]["ports"]
        );
    }
    let input = with_annotations(
        pod(containers),
        json!({INJECT_PROXY_ANNOTATION: "true", PROXY_PORT_ANNOTATION: "9090"}),
    );
    let rejection = reject(&proxy_settings(false), &input, &default_sa());
    assert_eq!(rejection.reason, DenyReason::InvalidPod);
    assert!(
        rejection
            .message
            .starts_with("container \"odd\" in spec.containers has ports that cannot be read"),
        "{}",
        rejection.message
    );
}
