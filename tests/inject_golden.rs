//! Golden tests of `azwi-webhook inject`: each directory under `tests/golden/inject/` holds an input
//! (`input.yaml` or `input.json`, fed on standard input), optional `args` (one per line; `$CASE` is the
//! case directory) and `env` (`KEY=VALUE` lines; default: only `AZURE_TENANT_ID`), and the expected
//! `stdout`, `stderr` and `status`. `UPDATE_GOLDEN=1 cargo test --test inject_golden` rewrites the
//! expectations; review the diff before committing it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use azwi_webhook::config::{parse_go_style, Command};
use azwi_webhook::inject;

const DEFAULT_TENANT: &str = "22222222-3333-4444-5555-666666666666";

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/inject")
        .join(case)
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn golden(case: &str) {
    let dir = case_dir(case);
    let dir_text = dir.display().to_string();
    let input = read(&dir.join("input.yaml"))
        .or_else(|| read(&dir.join("input.json")))
        .expect("input.yaml or input.json");
    let mut argv: Vec<String> = ["azwi-webhook", "inject", "-f", "-"]
        .map(str::to_owned)
        .to_vec();
    argv.extend(
        read(&dir.join("args"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.replace("$CASE", &dir_text)),
    );
    let env: BTreeMap<String, String> = match read(&dir.join("env")) {
        Some(text) => text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        None => [("AZURE_TENANT_ID".to_owned(), DEFAULT_TENANT.to_owned())].into(),
    };
    let env = move |name: &str| env.get(name).cloned();
    let Command::Inject(args) = parse_go_style(&argv).expect("valid args").into_command() else {
        panic!("{case}: not an inject command line");
    };
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let status = inject::run(&args, &env, &mut input.as_bytes(), &mut stdout, &mut stderr);
    let text = |bytes: Vec<u8>| {
        String::from_utf8(bytes)
            .expect("utf-8")
            .replace(&dir_text, "$CASE")
    };
    let actual = [
        ("stdout", text(stdout)),
        ("stderr", text(stderr)),
        ("status", format!("{status}\n")),
    ];
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        for (file, content) in &actual {
            std::fs::write(dir.join(file), content).expect("write golden file");
        }
        return;
    }
    for (file, content) in &actual {
        let expected = read(&dir.join(file))
            .unwrap_or_else(|| panic!("{case}/{file} missing; run with UPDATE_GOLDEN=1"));
        assert_eq!(
            *content, expected,
            "{case}/{file} differs (UPDATE_GOLDEN=1 rewrites it)"
        );
    }
    if status != 0 {
        assert!(actual[0].1.is_empty(), "{case}: nothing partial printed");
    }
}

macro_rules! golden {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                golden(stringify!($case));
            }
        )*

        #[test]
        fn every_case_directory_has_a_test() {
            let listed = [$(stringify!($case)),*];
            let root = case_dir("");
            for entry in std::fs::read_dir(root).expect("golden directory") {
                let name = entry.expect("entry").file_name().to_string_lossy().into_owned();
                assert!(listed.contains(&name.as_str()), "no test for golden case {name}");
            }
        }
    };
}

golden!(
    pod,
    deployment,
    statefulset,
    daemonset,
    replicaset,
    job,
    cronjob,
    list,
    json_input,
    output_patch,
    all,
    namespace_flag,
    service_account_file,
    config_map,
    rbac_warning,
    warning_no_client_id,
    explain,
    explain_no_token_proxy,
    excluded_namespace,
    explain_excluded_namespace,
    explain_webhook_config,
    error_webhook_config,
    error_rejected_no_token_proxy,
    error_missing_service_account,
    error_bad_yaml,
    error_label_not_a_string,
    error_field_type,
    error_missing_template,
    error_not_an_object,
    kubectl_scalars,
);
