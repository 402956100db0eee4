//! Validation of flags and environment into `Settings` and `ServeConfig`: every rule, every error message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use azwi_webhook::config::{
    build_settings, load_serve, Cli, Command, ConfigError, LogLevel, ServeArgs, ServeConfig,
    TlsMinVersion, DEFAULT_PROXY_IMAGE, DEFAULT_PROXY_INIT_IMAGE,
};
use azwi_webhook::mutate::settings::{
    ClusterCa, ContainerResources, IdentityBinding, ProxySettings, RbacCheck, ResourceList,
    Settings,
};
use clap::Parser;
use serde_json::json;

type Env = BTreeMap<&'static str, String>;

/// `serve` args parsed from `flags`, exactly as given.
fn serve_args(flags: &[&str]) -> ServeArgs {
    let mut argv = vec!["azwi-webhook", "serve"];
    argv.extend_from_slice(flags);
    match Cli::try_parse_from(argv).map(Cli::into_command) {
        Ok(Command::Serve(args)) => *args,
        other => panic!("{flags:?}: {other:?}"),
    }
}

fn env(pairs: &[(&'static str, &str)]) -> Env {
    let mut env: Env = [(
        "AZURE_TENANT_ID",
        "11111111-2222-3333-4444-555555555555".to_owned(),
    )]
    .into();
    for (k, v) in pairs {
        env.insert(k, (*v).to_owned());
    }
    env
}

/// Loads with `--disable-cert-rotation` prepended (the expected `ServeConfig`s below assume it).
fn load(flags: &[&str], env: &Env) -> Result<(ServeConfig, Settings), ConfigError> {
    let mut all = vec!["--disable-cert-rotation"];
    all.extend_from_slice(flags);
    load_serve(&serve_args(&all), env)
}

fn settings(flags: &[&str], pairs: &[(&'static str, &str)]) -> Settings {
    match load(flags, &env(pairs)) {
        Ok((_, s)) => s,
        Err(e) => panic!("{flags:?} {pairs:?}: {e}"),
    }
}

fn ca_pem() -> String {
    let certs = azwi_webhook::certs::generate(&["x.svc".to_owned()], SystemTime::now());
    certs.expect("generate").ca_cert_pem
}

#[test]
fn defaults_give_documented_settings_and_serve_config() {
    let (serve, settings) = load(&[], &env(&[])).expect("defaults are valid");
    assert_eq!(
        settings,
        Settings {
            audience: "api://AzureADTokenExchange".into(),
            tenant_id: "11111111-2222-3333-4444-555555555555".into(),
            authority_host: "https://login.microsoftonline.com/".into(),
            identity_binding: Some(IdentityBinding {
                switch_key: "azure.workload.identity/use-identity-binding".into(),
                audience: "api://AKSIdentityBinding".into(),
                token_proxy: "".into(),
                sni_name: "".into(),
                ca: ClusterCa::None,
            }),
            proxy: ProxySettings {
                image: DEFAULT_PROXY_IMAGE.into(),
                init_image: DEFAULT_PROXY_INIT_IMAGE.into(),
                log_level: String::new(),
                resources: ContainerResources::default(),
                init_resources: ContainerResources::default(),
            },
        }
    );
    let any = |port| SocketAddr::from(([0u16; 8], port));
    assert_eq!(
        serve,
        ServeConfig {
            webhook_addr: any(9443),
            webhook_cert_dir: PathBuf::from("/certs"),
            disable_cert_rotation: true,
            tls_min_version: TlsMinVersion::V1_3,
            client_ca_file: None,
            health_addr: any(9440),
            metrics_addr: any(8095),
            log_level: LogLevel::Unset,
            shutdown_delay: Duration::from_secs(5),
            shutdown_drain_timeout: Duration::from_secs(15),
            rbac_check: RbacCheck::Deny,
            max_in_flight_reviews: 1000,
            pod_namespace: "azure-workload-identity-system".into(),
            kubeconfig: None,
            ignored_flags: Vec::new(),
        }
    );
}

#[test]
fn serve_flags_are_parsed_into_typed_values() {
    let (serve, settings) = load(
        &[
            "--webhook-addr=127.0.0.1:8443",
            "--health-addr=[::1]:1",
            "--metrics-addr=0.0.0.0:2",
            "--webhook-cert-dir=/c",
            "--tls-min-version=1.2",
            "--client-ca-file=/ca.pem",
            "--metrics-backend=PROMETHEUS",
            "--log-level=debug",
            "--shutdown-delay=1m30s",
            "--rbac-check=off",
        ],
        &env(&[("POD_NAMESPACE", "wi")]),
    )
    .expect("valid");
    assert_eq!(serve.webhook_addr.to_string(), "127.0.0.1:8443");
    assert_eq!(serve.health_addr.to_string(), "[::1]:1");
    assert_eq!(serve.metrics_addr.to_string(), "0.0.0.0:2");
    assert_eq!(serve.webhook_cert_dir, PathBuf::from("/c"));
    assert_eq!(serve.tls_min_version, TlsMinVersion::V1_2);
    assert_eq!(serve.client_ca_file, Some(PathBuf::from("/ca.pem")));
    assert_eq!(serve.log_level, LogLevel::Debug);
    assert_eq!(settings.proxy.log_level, "debug");
    assert_eq!(serve.shutdown_delay, Duration::from_secs(90));
    assert_eq!(serve.rbac_check, RbacCheck::Off);
    assert_eq!(serve.pod_namespace, "wi");
}

#[test]
fn shutdown_drain_is_configurable_and_checked_against_the_grace_period() {
    let tenant = env(&[]);
    let (serve, _) =
        load(&["--shutdown-drain-timeout=2m"], &tenant).expect("no grace period given");
    assert_eq!(serve.shutdown_drain_timeout, Duration::from_secs(120));
    // Exactly delay + drain + the exit margin fits.
    let (serve, _) = load(
        &[
            "--shutdown-delay=10s",
            "--shutdown-drain-timeout=18s",
            "--termination-grace-period=30s",
        ],
        &tenant,
    )
    .expect("10s + 18s + 2s fits in 30s");
    assert_eq!(serve.shutdown_delay, Duration::from_secs(10));
    assert_eq!(serve.shutdown_drain_timeout, Duration::from_secs(18));
    // The defaults (5s + 15s) fit the manifests' 30s.
    load(&["--termination-grace-period=30s"], &tenant).expect("defaults fit");
    let err = load(
        &[
            "--shutdown-delay=10s",
            "--shutdown-drain-timeout=18001ms",
            "--termination-grace-period=30s",
        ],
        &tenant,
    )
    .expect_err("1 ms over");
    assert!(matches!(
        err,
        ConfigError::ShutdownExceedsGracePeriod {
            needed_secs: 31,
            ..
        }
    ));
}

#[test]
fn mutation_flags_shape_audiences_and_identity_binding() {
    assert_eq!(
        &*settings(&["--audience="], &[]).audience,
        "api://AzureADTokenExchange"
    );
    assert_eq!(
        &*settings(&["--audience=api://mine"], &[]).audience,
        "api://mine"
    );
    let off = settings(
        &[
            "--custom-token-endpoint-annotation-suffix=",
            "--custom-token-endpoint-audience=",
        ],
        &[],
    );
    assert_eq!(off.identity_binding, None);
    let custom = settings(
        &[
            "--custom-token-endpoint-annotation-suffix=My-Binding",
            "--custom-token-endpoint-audience=api://ib",
        ],
        &[],
    );
    let ib = custom.identity_binding.expect("on");
    // The key keeps its case: annotation lookups are case-sensitive.
    assert_eq!(ib.switch_key, "azure.workload.identity/use-My-Binding");
    assert_eq!(&*ib.audience, "api://ib");
    let longest = "a".repeat(59);
    let flag = format!("--custom-token-endpoint-annotation-suffix={longest}");
    assert!(settings(&[&flag], &[]).identity_binding.is_some());
}

#[test]
fn environment_fills_settings() {
    let ib = |pairs: &[(&'static str, &str)]| {
        settings(&[], pairs)
            .identity_binding
            .expect("identity binding on")
    };
    let host = |cloud: &str| {
        settings(&[], &[("AZURE_ENVIRONMENT", cloud)])
            .authority_host
            .to_string()
    };
    assert_eq!(host("AzureChinaCloud"), "https://login.chinacloudapi.cn/");
    assert_eq!(
        host("azureusgovernment"),
        "https://login.microsoftonline.us/"
    );
    assert_eq!(host(""), "https://login.microsoftonline.com/");

    let proxy = settings(&[], &[("PROXY_IMAGE", "p:1"), ("PROXY_INIT_IMAGE", "i:1")]).proxy;
    assert_eq!(
        (proxy.image.as_str(), proxy.init_image.as_str()),
        ("p:1", "i:1")
    );
    let proxy = settings(&[], &[("PROXY_IMAGE", ""), ("PROXY_INIT_IMAGE", "")]).proxy;
    assert_eq!(proxy.image, DEFAULT_PROXY_IMAGE);
    assert_eq!(proxy.init_image, DEFAULT_PROXY_INIT_IMAGE);

    let proxy_cases: [(&[(&'static str, &str)], &str); 4] = [
        (
            &[("AZURE_KUBERNETES_TOKEN_PROXY", "https://p")],
            "https://p",
        ),
        (
            &[("AZURE_KUBERNETES_TOKEN_ENDPOINT", "https://e")],
            "https://e",
        ),
        (
            &[
                ("AZURE_KUBERNETES_TOKEN_PROXY", "https://p"),
                ("AZURE_KUBERNETES_TOKEN_ENDPOINT", "https://e"),
            ],
            "https://p",
        ),
        (
            &[
                ("AZURE_KUBERNETES_TOKEN_PROXY", ""),
                ("AZURE_KUBERNETES_TOKEN_ENDPOINT", "https://e"),
            ],
            "https://e",
        ),
    ];
    for (pairs, want) in proxy_cases {
        assert_eq!(&*ib(pairs).token_proxy, want, "{pairs:?}");
    }
    assert_eq!(
        &*ib(&[("AZURE_KUBERNETES_SNI_NAME", "sni")]).sni_name,
        "sni"
    );

    let pem = ca_pem();
    let two = format!("{pem}{pem}");
    assert_eq!(
        ib(&[("AZURE_KUBERNETES_CA_DATA", &pem)]).ca,
        ClusterCa::Data(pem.as_str().into())
    );
    assert_eq!(
        ib(&[("AZURE_KUBERNETES_CA_DATA", &two)]).ca,
        ClusterCa::Data(two.as_str().into())
    );
    assert_eq!(
        ib(&[("AZURE_KUBERNETES_CA_CONFIGMAP_NAME", "kube-root-ca.crt")]).ca,
        ClusterCa::ConfigMap("kube-root-ca.crt".into())
    );
    let ctb = |selector: Option<&str>| {
        let mut pairs = vec![("AZURE_KUBERNETES_CA_CTB_SIGNER_NAME", "example.com/s")];
        pairs.extend(selector.map(|s| ("AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR", s)));
        ib(&pairs).ca
    };
    let want = |selector| ClusterCa::ClusterTrustBundle {
        signer_name: "example.com/s".into(),
        label_selector: selector,
    };
    assert_eq!(ctb(None), want(json!({})));
    assert_eq!(ctb(Some(" \n")), want(json!({})));
    assert_eq!(
        ctb(Some(r#"{"matchlabels":{"a":"b"}}"#)),
        want(json!({"matchLabels":{"a":"b"}}))
    );
    // Empty values count as unset, so an empty CA source does not conflict with a set one.
    assert_eq!(
        ib(&[
            ("AZURE_KUBERNETES_CA_DATA", ""),
            ("AZURE_KUBERNETES_CA_CONFIGMAP_NAME", "cm")
        ])
        .ca,
        ClusterCa::ConfigMap("cm".into())
    );
}

fn quantities(cpu: Option<&str>, memory: Option<&str>) -> ResourceList {
    ResourceList {
        cpu: cpu.map(str::to_owned),
        memory: memory.map(str::to_owned),
    }
}

/// (environment, expected sidecar resources, expected init container resources)
type ResourceCase = (
    &'static [(&'static str, &'static str)],
    ContainerResources,
    ContainerResources,
);

#[test]
fn proxy_resources_come_from_the_environment() {
    let none = ContainerResources::default;
    let cases: [ResourceCase; 6] = [
        (&[], none(), none()),
        // Empty ConfigMap values mean unset, as for every other variable.
        (
            &[("PROXY_CPU_REQUEST", ""), ("PROXY_INIT_MEMORY_LIMIT", "")],
            none(),
            none(),
        ),
        (
            &[
                ("PROXY_CPU_REQUEST", "10m"),
                ("PROXY_MEMORY_REQUEST", "16Mi"),
            ],
            ContainerResources {
                requests: quantities(Some("10m"), Some("16Mi")),
                ..none()
            },
            none(),
        ),
        (
            &[
                ("PROXY_INIT_CPU_REQUEST", "0.01"),
                ("PROXY_INIT_MEMORY_REQUEST", "8Mi"),
                ("PROXY_INIT_CPU_LIMIT", "100m"),
                ("PROXY_INIT_MEMORY_LIMIT", "32Mi"),
            ],
            none(),
            ContainerResources {
                requests: quantities(Some("0.01"), Some("8Mi")),
                limits: quantities(Some("100m"), Some("32Mi")),
            },
        ),
        // A request equal to its limit (in other units) is fine; a limit alone is fine.
        (
            &[
                ("PROXY_CPU_REQUEST", "1"),
                ("PROXY_CPU_LIMIT", "1000m"),
                ("PROXY_MEMORY_LIMIT", "1Gi"),
            ],
            ContainerResources {
                requests: quantities(Some("1"), None),
                limits: quantities(Some("1000m"), Some("1Gi")),
            },
            none(),
        ),
        // The sidecar's request is compared with the sidecar's limit, not the init container's.
        (
            &[
                ("PROXY_MEMORY_REQUEST", "64Mi"),
                ("PROXY_INIT_MEMORY_LIMIT", "16Mi"),
            ],
            ContainerResources {
                requests: quantities(None, Some("64Mi")),
                ..none()
            },
            ContainerResources {
                limits: quantities(None, Some("16Mi")),
                ..none()
            },
        ),
    ];
    for (pairs, sidecar, init) in cases {
        let proxy = settings(&[], pairs).proxy;
        assert_eq!(
            (proxy.resources, proxy.init_resources),
            (sidecar, init),
            "{pairs:?}"
        );
    }
}

#[test]
fn config_prefixed_variables_are_ignored() {
    let mut e = env(&[("CONFIG_AZURE_TENANT_ID", "other")]);
    assert_eq!(
        build_settings(&serve_args(&[]).mutation, &e).map(|s| s.tenant_id),
        Ok("11111111-2222-3333-4444-555555555555".into())
    );
    e.remove("AZURE_TENANT_ID");
    assert_eq!(
        build_settings(&serve_args(&[]).mutation, &e),
        Err(ConfigError::TenantIdMissing)
    );
}

#[test]
fn inject_builds_the_same_settings_as_serve() {
    let argv = [
        "azwi-webhook",
        "inject",
        "-f",
        "-",
        "--audience=api://a",
        "--log-level=info",
    ];
    let Ok(Command::Inject(inject)) = Cli::try_parse_from(argv).map(Cli::into_command) else {
        panic!("inject");
    };
    let e = env(&[("AZURE_ENVIRONMENT", "AzureChinaCloud")]);
    let from_inject = build_settings(&inject.mutation, &e);
    let from_serve = load(&["--audience=api://a", "--log-level=info"], &e).map(|(_, s)| s);
    assert_eq!(from_inject, from_serve);
}

/// Each case: flags, env, substrings the one-line message must contain (the first names the culprit).
#[test]
fn every_error_names_its_flag_or_variable() {
    let pem = ca_pem();
    let key_and_cert =
        format!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n{pem}");
    let junk_cert = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
    let long_suffix = format!(
        "--custom-token-endpoint-annotation-suffix={}",
        "a".repeat(60)
    );
    type Case<'a> = (Vec<&'a str>, Vec<(&'static str, &'a str)>, Vec<&'a str>);
    let cases: Vec<Case> = vec![
        (vec![], vec![("AZURE_TENANT_ID", "")], vec!["AZURE_TENANT_ID", "unset or empty"]),
        (vec![], vec![("AZURE_TENANT_ID", "tenant-1")], vec!["AZURE_TENANT_ID \"tenant-1\" is not a GUID", "tenantId"]),
        (vec![], vec![("AZURE_TENANT_ID", "{11111111-2222-3333-4444-555555555555}")], vec!["AZURE_TENANT_ID", "is not a GUID"]),
        (vec![], vec![("AZURE_TENANT_ID", "00000000-0000-0000-0000-000000000000")], vec!["AZURE_TENANT_ID", "all-zero placeholder"]),
        (vec![], vec![("AZURE_ENVIRONMENT", "AzureGermanCloud")], vec!["AZURE_ENVIRONMENT", "retired", "AzurePublicCloud"]),
        (vec![], vec![("AZURE_ENVIRONMENT", "AzureStackCloud")], vec!["AZURE_ENVIRONMENT", "AzureChinaCloud"]),
        (vec![], vec![("AZURE_ENVIRONMENT", "moon")], vec!["AZURE_ENVIRONMENT \"moon\" is not supported"]),
        (vec![], vec![("AZURE_KUBERNETES_CA_DATA", "not pem")], vec!["AZURE_KUBERNETES_CA_DATA", "no \"-----BEGIN CERTIFICATE-----\""]),
        (vec![], vec![("AZURE_KUBERNETES_CA_DATA", &key_and_cert)], vec!["AZURE_KUBERNETES_CA_DATA", "private key"]),
        (vec![], vec![("AZURE_KUBERNETES_CA_DATA", junk_cert)], vec!["AZURE_KUBERNETES_CA_DATA", "does not parse"]),
        (vec![], vec![("AZURE_KUBERNETES_CA_DATA", &pem), ("AZURE_KUBERNETES_CA_CONFIGMAP_NAME", "cm")], vec!["only one of", "AZURE_KUBERNETES_CA_DATA and AZURE_KUBERNETES_CA_CONFIGMAP_NAME are set"]),
        (vec![], vec![("AZURE_KUBERNETES_CA_CONFIGMAP_NAME", "cm"), ("AZURE_KUBERNETES_CA_CTB_SIGNER_NAME", "a.io/s")], vec!["only one of", "AZURE_KUBERNETES_CA_CONFIGMAP_NAME and AZURE_KUBERNETES_CA_CTB_SIGNER_NAME are set"]),
        (vec![], vec![("AZURE_KUBERNETES_CA_CONFIGMAP_NAME", "Bad_Name")], vec!["AZURE_KUBERNETES_CA_CONFIGMAP_NAME \"Bad_Name\"", "lower-case"]),
        (vec![], vec![("AZURE_KUBERNETES_CA_CTB_SIGNER_NAME", "signer")], vec!["AZURE_KUBERNETES_CA_CTB_SIGNER_NAME", "no '/'"]),
        (vec![], vec![("AZURE_KUBERNETES_CA_CTB_SIGNER_NAME", "Example.com/s")], vec!["AZURE_KUBERNETES_CA_CTB_SIGNER_NAME", "domain"]),
        (vec![], vec![("AZURE_KUBERNETES_CA_CTB_SIGNER_NAME", "example.com/")], vec!["AZURE_KUBERNETES_CA_CTB_SIGNER_NAME", "path"]),
        (vec![], vec![("AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR", "{}")], vec!["AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR is set but AZURE_KUBERNETES_CA_CTB_SIGNER_NAME is not"]),
        (vec![], vec![("AZURE_KUBERNETES_CA_CTB_SIGNER_NAME", "a.io/s"), ("AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR", "{")], vec!["AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR", "invalid JSON"]),
        (vec![], vec![("AZURE_KUBERNETES_CA_CTB_SIGNER_NAME", "a.io/s"), ("AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR", r#"{"matchExpressions":[{"key":"k","operator":"In"}]}"#)], vec!["AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR", "In needs values"]),
        (vec![], vec![("PROXY_CPU_REQUEST", "100 m")], vec!["PROXY_CPU_REQUEST \"100 m\"", "resource quantity", "suffix"]),
        (vec![], vec![("PROXY_MEMORY_LIMIT", "64MB")], vec!["PROXY_MEMORY_LIMIT \"64MB\"", "suffix \"MB\"", "no limit"]),
        (vec![], vec![("PROXY_INIT_CPU_LIMIT", "-1")], vec!["PROXY_INIT_CPU_LIMIT", "negative"]),
        (vec![], vec![("PROXY_INIT_MEMORY_REQUEST", "lots")], vec!["PROXY_INIT_MEMORY_REQUEST", "number", "no request"]),
        (vec![], vec![("PROXY_CPU_REQUEST", "2"), ("PROXY_CPU_LIMIT", "1500m")], vec!["PROXY_CPU_REQUEST \"2\" is above PROXY_CPU_LIMIT \"1500m\""]),
        (vec![], vec![("PROXY_MEMORY_REQUEST", "1G"), ("PROXY_MEMORY_LIMIT", "900Mi")], vec!["PROXY_MEMORY_REQUEST \"1G\" is above PROXY_MEMORY_LIMIT \"900Mi\""]),
        (vec![], vec![("PROXY_INIT_MEMORY_REQUEST", "65Mi"), ("PROXY_INIT_MEMORY_LIMIT", "64Mi")], vec!["PROXY_INIT_MEMORY_REQUEST", "above PROXY_INIT_MEMORY_LIMIT"]),
        (vec![], vec![("POD_NAMESPACE", "Bad")], vec!["POD_NAMESPACE \"Bad\""]),
        (vec!["--custom-token-endpoint-annotation-suffix="], vec![], vec!["--custom-token-endpoint-annotation-suffix is empty but --custom-token-endpoint-audience is set"]),
        (vec!["--custom-token-endpoint-audience="], vec![], vec!["--custom-token-endpoint-audience is empty but --custom-token-endpoint-annotation-suffix is set"]),
        (vec!["--custom-token-endpoint-annotation-suffix=a/b"], vec![], vec!["--custom-token-endpoint-annotation-suffix", "azure.workload.identity/use-a/b", "'/'"]),
        (vec![long_suffix.as_str()], vec![], vec!["--custom-token-endpoint-annotation-suffix", "at most 63"]),
        (vec!["--custom-token-endpoint-annotation-suffix=ib-"], vec![], vec!["--custom-token-endpoint-annotation-suffix", "start and end"]),
        (vec!["--custom-token-endpoint-annotation-suffix=i b"], vec![], vec!["--custom-token-endpoint-annotation-suffix", "letters, digits"]),
        (vec!["--custom-token-endpoint-audience=API://azureadtokenexchange"], vec![], vec!["--custom-token-endpoint-audience", "default audience"]),
        (vec!["--audience=api://same", "--custom-token-endpoint-audience=api://SAME"], vec![], vec!["--custom-token-endpoint-audience", "--audience \"api://same\""]),
        (vec!["--tls-min-version=1.0"], vec![], vec!["--tls-min-version 1.0 is refused"]),
        (vec!["--tls-min-version=1.1"], vec![], vec!["--tls-min-version 1.1 is refused"]),
        (vec!["--tls-min-version=1.4"], vec![], vec!["--tls-min-version \"1.4\"", "1.2, 1.3"]),
        (vec!["--metrics-backend=otlp"], vec![], vec!["--metrics-backend \"otlp\"", "prometheus"]),
        (vec!["--log-level=warn"], vec![], vec!["--log-level \"warn\"", "info, debug, trace, all"]),
        (vec!["--rbac-check=yes"], vec![], vec!["--rbac-check \"yes\"", "deny, warn, off"]),
        (vec!["--webhook-addr=9443"], vec![], vec!["--webhook-addr \"9443\"", "missing port"]),
        (vec!["--health-addr=:x"], vec![], vec!["--health-addr \":x\"", "port"]),
        (vec!["--metrics-addr=::1:80"], vec![], vec!["--metrics-addr", "brackets"]),
        (vec!["--shutdown-delay=5"], vec![], vec!["--shutdown-delay \"5\"", "unit"]),
        (vec!["--shutdown-drain-timeout=1.5s"], vec![], vec!["--shutdown-drain-timeout \"1.5s\"", "fractions"]),
        (vec!["--termination-grace-period=30"], vec![], vec!["--termination-grace-period \"30\"", "unit"]),
        (vec!["--shutdown-delay=20s", "--termination-grace-period=30s"], vec![], vec!["--termination-grace-period \"30s\" is too short", "--shutdown-delay \"20s\"", "--shutdown-drain-timeout \"15s\"", "at least 37s"]),
        (vec!["--shutdown-drain-timeout=24s", "--termination-grace-period=30s"], vec![], vec!["--termination-grace-period \"30s\" is too short", "at least 31s"]),
        (vec!["--shutdown-delay=5s", "--shutdown-drain-timeout=23500ms", "--termination-grace-period=30s"], vec![], vec!["--termination-grace-period", "at least 31s"]),
    ];
    for (flags, pairs, wants) in cases {
        let err = match load(&flags, &env(&pairs)) {
            Ok(_) => panic!("{flags:?} {pairs:?} should fail"),
            Err(e) => e.to_string(),
        };
        assert!(!err.contains('\n'), "one line: {err}");
        for want in &wants {
            assert!(
                err.contains(want),
                "{flags:?} {pairs:?}: {err:?} lacks {want:?}"
            );
        }
        assert!(
            err.find(wants[0]).is_some_and(|i| i < 20),
            "culprit first: {err}"
        );
    }
}

#[test]
fn tenant_id_unset_is_an_error() {
    let mut e = env(&[]);
    e.remove("AZURE_TENANT_ID");
    assert_eq!(load(&[], &e).err(), Some(ConfigError::TenantIdMissing));
}

#[test]
fn cert_rotation_is_on_by_default_and_can_be_disabled() {
    let (serve, _) =
        load_serve(&serve_args(&[]), &env(&[])).expect("self-managed certificates are valid");
    assert!(!serve.disable_cert_rotation);
    let (serve, _) = load_serve(&serve_args(&["--disable-cert-rotation=false"]), &env(&[]))
        .expect("explicit false");
    assert!(!serve.disable_cert_rotation);
    let (serve, _) =
        load_serve(&serve_args(&["--disable-cert-rotation"]), &env(&[])).expect("disabled");
    assert!(serve.disable_cert_rotation);
}

#[test]
fn config_errors_exit_with_status_2() {
    assert_eq!(ConfigError::TenantIdMissing.exit_code(), 2);
}

#[test]
fn certs_dns_names_default_to_the_service_in_pod_namespace() {
    let certs = |argv: &[&str]| match Cli::try_parse_from(argv).map(Cli::into_command) {
        Ok(Command::Certs(c)) => c,
        other => panic!("{other:?}"),
    };
    let defaults = certs(&["azwi-webhook", "certs", "--out", "o"]);
    assert_eq!(
        defaults.dns_names(&env(&[])),
        Ok(vec![
            "azure-wi-webhook-webhook-service.azure-workload-identity-system.svc".to_owned()
        ])
    );
    assert_eq!(
        defaults.dns_names(&env(&[("POD_NAMESPACE", "wi")])),
        Ok(vec!["azure-wi-webhook-webhook-service.wi.svc".to_owned()])
    );
    assert!(defaults
        .dns_names(&env(&[("POD_NAMESPACE", "W I")]))
        .is_err());
    let given = certs(&[
        "azwi-webhook",
        "certs",
        "--out",
        "o",
        "--dns-name",
        "a.b",
        "--dns-name",
        "*.c.d",
    ]);
    assert_eq!(
        given.dns_names(&env(&[])),
        Ok(vec!["a.b".to_owned(), "*.c.d".to_owned()])
    );
    let bad = certs(&["azwi-webhook", "certs", "--out", "o", "--dns-name", "A_B"]);
    let msg = bad
        .dns_names(&env(&[]))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.starts_with("--dns-name \"A_B\""), "{msg}");
}
