//! The real `azwi-webhook` binary as the kubelet runs it: a separate process, configured by flags
//! and environment, stopped by SIGTERM. Other tests drive `app::serve` in-process; only these see
//! what `main` prints, its exit status and its signal handling.
//!
//! Contracts checked (README "Configuration", W17; docs/operations.md §2):
//! - a bad configuration is one line on stderr naming the flag or variable, and exit status 2;
//! - a startup failure (port taken, no Kubernetes configuration) is one line and exit status 1;
//! - on SIGTERM `/readyz` fails at once, the listeners keep serving for `--shutdown-delay`,
//!   in-flight requests finish, and the process exits 0.
//!
//! Hermetic: the child's environment is cleared (no `AZURE_*`, `KUBECONFIG`, `RUST_LOG` or in-cluster
//! variables leak in from the machine running the tests), certificates are generated, the API server
//! is the in-process fake on 127.0.0.1, and every child is killed if a test fails.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/process.rs"]
mod process;
#[path = "support/rotation.rs"]
mod rotation;
#[path = "support/app.rs"]
mod test_app;
#[path = "support/tls.rs"]
mod tls_support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_apiserver::{Endpoint, FakeApiServer};
use process::{start_serve, Running};
use serde_json::{json, Value};
use tempfile::TempDir;
use tls_support::{eventually, generate_ca_and_leaf, get_plain, post, Http};

const BIN: &str = env!("CARGO_BIN_EXE_azwi-webhook");
/// A process that validates its configuration and gives up takes milliseconds; this only bounds a
/// hang (e.g. a bad config that was accepted and went on to serve).
const EXIT_DEADLINE: Duration = Duration::from_secs(10);
/// Long enough for a readiness probe, a fresh TLS review and a health probe on a loaded machine;
/// twice it (the slow review's hold) stays under the kube client's 5 s read timeout.
const SHUTDOWN_DELAY: Duration = Duration::from_secs(2);
const PATH: &str = "/mutate-v1-pod?timeout=10s";

/// The binary with an empty environment plus `env`. `HOME` is an empty directory so that a config
/// that unexpectedly passes validation fails fast at "no Kubernetes configuration" (exit 1) instead
/// of finding a developer's `~/.kube/config`; listeners the args leave unset are on 127.0.0.1:0 for
/// the same reason (never the default `:9443` etc. of the machine).
fn command(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    // `serve` is also what runs when the first argument is a flag.
    let serves = args
        .first()
        .is_none_or(|first| *first == "serve" || first.starts_with('-'));
    for flag in ["--webhook-addr", "--health-addr", "--metrics-addr"] {
        // clap refuses a flag given twice, so only the ones the case does not set itself.
        if serves && !args.iter().any(|a| a.starts_with(flag)) {
            cmd.arg(format!("{flag}=127.0.0.1:0"));
        }
    }
    cmd.env_clear()
        .env("HOME", home)
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

/// Runs to completion (bounded by [`EXIT_DEADLINE`]); returns (exit code, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let home = TempDir::new().expect("home");
    process::run_to_exit(command(home.path(), args, env), EXIT_DEADLINE)
}

/// The error contract: exit `code`, nothing on stdout, exactly one stderr line, prefixed with the
/// program name and containing every one of `names` (the flag or variable at fault).
fn assert_one_line_error(args: &[&str], env: &[(&str, &str)], code: i32, names: &[&str]) -> String {
    let (status, stdout, stderr) = run(args, env);
    assert_eq!(status, Some(code), "{args:?} {env:?}: stderr: {stderr}");
    assert!(stdout.is_empty(), "{args:?}: stdout: {stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?} {env:?}: one error must be one line: {stderr}"
    );
    assert!(lines[0].starts_with("azwi-webhook: "), "{}", lines[0]);
    for name in names {
        assert!(
            lines[0].contains(name),
            "{:?} does not name {name}",
            lines[0]
        );
    }
    lines[0].to_owned()
}

const TENANT: (&str, &str) = ("AZURE_TENANT_ID", "11111111-2222-3333-4444-555555555555");

#[test]
fn insecure_tls_min_version_is_one_line_and_exit_2() {
    assert_one_line_error(
        &["serve", "--tls-min-version", "1.1"],
        &[TENANT],
        2,
        &["--tls-min-version", "1.1"],
    );
    // Upstream-style invocation: no subcommand, Go-style single-dash flag.
    assert_one_line_error(
        &["-tls-min-version=1.0"],
        &[TENANT],
        2,
        &["--tls-min-version", "1.0"],
    );
}

#[test]
fn unknown_azure_environment_is_one_line_and_exit_2() {
    assert_one_line_error(
        &["serve"],
        &[TENANT, ("AZURE_ENVIRONMENT", "AzureMarsCloud")],
        2,
        &["AZURE_ENVIRONMENT", "AzureMarsCloud"],
    );
}

#[test]
fn missing_or_empty_tenant_is_one_line_and_exit_2() {
    assert_one_line_error(&["serve"], &[], 2, &["AZURE_TENANT_ID"]);
    // A ConfigMap key with an empty value is as good as unset.
    assert_one_line_error(
        &["serve"],
        &[("AZURE_TENANT_ID", "")],
        2,
        &["AZURE_TENANT_ID"],
    );
}

#[test]
fn unknown_rbac_check_mode_is_one_line_and_exit_2() {
    assert_one_line_error(
        &["serve", "--rbac-check", "maybe"],
        &[TENANT],
        2,
        &["--rbac-check", "maybe"],
    );
}

#[test]
fn one_empty_custom_token_endpoint_flag_is_one_line_and_exit_2() {
    let line = assert_one_line_error(
        &["serve", "--custom-token-endpoint-audience="],
        &[TENANT],
        2,
        &["--custom-token-endpoint-audience is empty"],
    );
    assert!(
        line.contains("--custom-token-endpoint-annotation-suffix"),
        "{line}"
    );
    let line = assert_one_line_error(
        &["serve", "--custom-token-endpoint-annotation-suffix="],
        &[TENANT],
        2,
        &["--custom-token-endpoint-annotation-suffix is empty"],
    );
    assert!(line.contains("--custom-token-endpoint-audience"), "{line}");
    // Both empty is valid (identity binding off): it gets past validation and fails only for want
    // of a Kubernetes configuration, which shows the two cases above are refused by validation.
    let (status, _, stderr) = run(
        &[
            "serve",
            "--custom-token-endpoint-audience=",
            "--custom-token-endpoint-annotation-suffix=",
        ],
        &[TENANT],
    );
    assert_eq!(status, Some(1), "{stderr}");
    assert!(stderr.contains("Kubernetes client"), "{stderr}");
}

#[test]
fn startup_failures_are_one_line_and_exit_1() {
    // A port that is really taken: the test holds the listener for the whole run, so no race.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let health_flag = format!("--health-addr={addr}");
    // Self-managed certificates (no files to check), so the bind is the first thing to fail.
    let line = assert_one_line_error(&["serve", &health_flag], &[TENANT], 1, &["--health-addr"]);
    assert!(
        line.starts_with(&format!(
            "azwi-webhook: cannot listen on --health-addr {addr}"
        )),
        "{line}"
    );
    drop(taken);

    // A --kubeconfig that cannot be read.
    let line = assert_one_line_error(
        &["serve", "--kubeconfig=/nonexistent/kubeconfig"],
        &[TENANT],
        1,
        &["--kubeconfig", "/nonexistent/kubeconfig"],
    );
    // The cause once, not repeated by each layer that wraps it.
    assert_eq!(line.matches("No such file").count(), 1, "{line}");

    // No KUBECONFIG, an empty HOME and no in-cluster variables: nothing to talk to.
    assert_one_line_error(
        &["serve"],
        &[TENANT],
        1,
        &["Kubernetes client", "KUBECONFIG"],
    );
}

#[test]
fn tenant_that_is_not_a_guid_is_one_line_and_exit_2() {
    let cases = [
        ("tenant-1", "AZURE_TENANT_ID \"tenant-1\" is not a GUID"),
        (
            "00000000-0000-0000-0000-000000000000",
            "AZURE_TENANT_ID is the all-zero placeholder",
        ),
    ];
    for (tenant, message) in cases {
        assert_one_line_error(&["serve"], &[("AZURE_TENANT_ID", tenant)], 2, &[message]);
        // inject prefixes its own name; same message, same status.
        let (status, stdout, stderr) = run(&["inject", "-f", "-"], &[("AZURE_TENANT_ID", tenant)]);
        assert_eq!(status, Some(2), "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with(&format!("azwi-webhook inject: {message}")),
            "{stderr}"
        );
    }
}

#[test]
fn version_prints_version_commit_and_build_date() {
    let (status, stdout, stderr) = run(&["version"], &[]);
    assert_eq!(status, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            format!("azwi-webhook {}", env!("CARGO_PKG_VERSION")),
            format!("commit: {}", azwi_webhook::build_info::GIT_COMMIT),
            format!("build date: {}", azwi_webhook::build_info::build_date()),
        ],
        "{stdout}"
    );
    let commit = azwi_webhook::build_info::GIT_COMMIT;
    assert!(
        commit == "unknown"
            || commit
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
        "{commit}"
    );
}

/// `--client-ca-file` is read before anything else: with no Kubernetes configuration at all, the
/// error is still the file's.
#[test]
fn unusable_client_ca_file_is_named_before_the_kubernetes_client() {
    let dir = TempDir::new().expect("tempdir");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").expect("write");
    let junk_flag = format!("--client-ca-file={}", junk.display());
    for (flag, path, cause) in [
        (
            "--client-ca-file=/nonexistent/ca.pem",
            "/nonexistent/ca.pem",
            "No such file",
        ),
        (
            junk_flag.as_str(),
            junk.to_str().expect("utf-8"),
            "no PEM certificate",
        ),
    ] {
        let line = assert_one_line_error(
            &["serve", flag],
            &[TENANT],
            1,
            &["--client-ca-file", path, cause],
        );
        assert!(!line.contains("Kubernetes client"), "{line}");
    }
}

/// Runs `azwi-webhook` with a kubeconfig for `fake` plus `args`, off the runtime's threads (the fake
/// answers on them); the result of [`run`].
async fn run_against(
    fake: &FakeApiServer,
    dir: &Path,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, fake.kubeconfig()).expect("write kubeconfig");
    let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    args.push(format!("--kubeconfig={}", kubeconfig.display()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args, &[TENANT])
    })
    .await
    .expect("run azwi-webhook")
}

/// With provided certificates (`--disable-cert-rotation`), a certificate directory that is missing
/// or holds no usable pair stops the start with one line naming the flag; the API server is never
/// asked. (It used to run unready for ever, with a warning.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_webhook_cert_dir_stops_the_start_before_the_api_server_is_asked() {
    let fake = FakeApiServer::start_with_workload().await;
    let dir = TempDir::new().expect("tempdir");
    let missing = dir.path().join("misspelt-certs");
    let half = dir.path().join("half");
    std::fs::create_dir(&half).expect("mkdir");
    let pki = generate_ca_and_leaf(&["localhost"]);
    std::fs::copy(pki.path().join("tls.crt"), half.join("tls.crt")).expect("copy tls.crt");
    for (cert_dir, cause) in [(&missing, "tls.crt"), (&half, "tls.key")] {
        let cert_flag = format!("--webhook-cert-dir={}", cert_dir.display());
        let (status, stdout, stderr) = run_against(
            &fake,
            dir.path(),
            &["serve", "--disable-cert-rotation", &cert_flag],
        )
        .await;
        assert_eq!(status, Some(1), "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        for name in ["--webhook-cert-dir", &cert_dir.display().to_string(), cause] {
            assert!(
                lines[0].contains(name),
                "{:?} does not name {name}",
                lines[0]
            );
        }
    }
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}

/// With certificate rotation on (the default) the certificate directory is never read: the serving
/// certificate comes from the Secret. A misspelt `--webhook-cert-dir` therefore neither stops the
/// start nor keeps the webhook unready; it is named in one warning, since it most likely means
/// `--disable-cert-rotation` was forgotten. (Before, it was accepted without a word.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_cert_dir_is_not_read_with_rotation_on_and_a_given_one_is_named() {
    let fake = FakeApiServer::start_with_workload().await;
    fake.add_webhook_configuration(rotation::MWC, &["mutation.azure-workload-identity.io"]);
    let dir = TempDir::new().expect("tempdir");
    let misspelt = dir.path().join("misspelt-certs");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, fake.kubeconfig()).expect("write kubeconfig");
    let args = [
        format!("--webhook-cert-dir={}", misspelt.display()),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--log-level=info".to_owned(),
    ];
    let env = [TENANT, ("POD_NAMESPACE", rotation::NAMESPACE)];
    let running = start_serve(
        Path::new(BIN),
        dir.path(),
        &args,
        &env,
        Duration::from_secs(20),
    )
    .await;
    assert!(
        fake.secret_data(rotation::NAMESPACE, rotation::SECRET)
            .is_some(),
        "ready from the Secret it created"
    );
    assert!(!misspelt.exists(), "nothing is written to the directory");
    let log = running.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("--webhook-cert-dir is not read"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains(&misspelt.display().to_string()),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].contains("--disable-cert-rotation"),
        "{}",
        warnings[0]
    );
}

/// Kubernetes client failures print their cause, on one line, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_client_errors_show_their_cause_on_one_line() {
    let fake = FakeApiServer::start_with_workload().await;
    let dir = TempDir::new().expect("tempdir");
    let good = fake.kubeconfig();
    let cases = [
        // Not YAML: the parser's multi-line excerpt must not break the one line.
        ("garbage\n".to_owned(), "failed to parse kubeconfig YAML"),
        // A client key that is not a key: the client cannot be built, and the reason is shown.
        (
            with_user(
                &good,
                "client-certificate-data: aGVsbG8K\n    client-key-data: aGVsbG8K",
            ),
            "private key",
        ),
    ];
    for (kubeconfig, cause) in cases {
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, kubeconfig).expect("write kubeconfig");
        let flag = format!("--kubeconfig={}", path.display());
        let line = assert_one_line_error(
            &["serve", &flag],
            &[TENANT],
            1,
            &["Kubernetes client", cause],
        );
        assert_eq!(line.matches(cause).count(), 1, "{line}");
    }
    // A cluster CA that holds no certificate: refused at once instead of retrying a handshake
    // that can never succeed.
    let bad_ca = replace_ca_data(&good, "aGVsbG8K");
    let path = dir.path().join("bad-ca-kubeconfig");
    std::fs::write(&path, bad_ca).expect("write kubeconfig");
    let flag = format!("--kubeconfig={}", path.display());
    let line = tokio::task::spawn_blocking(move || {
        assert_one_line_error(
            &["serve", &flag],
            &[TENANT],
            1,
            &["certificate authority", "no PEM certificate"],
        )
    })
    .await
    .expect("bad CA case");
    assert!(line.contains("Kubernetes client"), "{line}");
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}

/// `kubeconfig` with its user's credentials replaced by `user_fields` (YAML, indented as a user).
fn with_user(kubeconfig: &str, user_fields: &str) -> String {
    let (head, _) = kubeconfig.split_once("users:").expect("a users: section");
    format!("{head}users:\n- name: fake\n  user:\n    {user_fields}\n")
}

/// `kubeconfig` with `certificate-authority-data` set to `data`.
fn replace_ca_data(kubeconfig: &str, data: &str) -> String {
    kubeconfig
        .lines()
        .map(
            |line| match line.split_once("certificate-authority-data:") {
                Some((indent, _)) => format!("{indent}certificate-authority-data: {data}"),
                None => line.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("\n")
}

/// Starts `azwi-webhook serve` with provided certificates and `KUBECONFIG` pointing at `fake`, and
/// waits for `/readyz` 200 (certificate loaded, listener serving, service-account cache synced).
async fn start_binary(dir: &Path, cert_dir: &Path, fake: &FakeApiServer) -> Running {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, fake.kubeconfig()).expect("write kubeconfig");
    let cert_dir = format!("--webhook-cert-dir={}", cert_dir.display());
    let delay = format!("--shutdown-delay={}s", SHUTDOWN_DELAY.as_secs());
    // Upstream's flag, as an out-of-cluster Deployment would pass it (e2e uses KUBECONFIG).
    let kubeconfig = format!("--kubeconfig={}", kubeconfig.display());
    let args = [
        "--disable-cert-rotation",
        &cert_dir,
        &delay,
        "--log-level=info",
        &kubeconfig,
        // A flag of upstream releases before v1.0, Go-style: accepted, ignored with a warning.
        "-arc-cluster",
    ];
    let env = [TENANT];
    // Generous: startup is milliseconds, but the first sync goes through a debug-build TLS client
    // and CI machines stall.
    start_serve(Path::new(BIN), dir, &args, &env, Duration::from_secs(20)).await
}

fn review(uid: &str, service_account: &str) -> Vec<u8> {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "web-", "namespace": "ns",
                     "labels": {"azure.workload.identity/use": "true"}},
        "spec": {"serviceAccountName": service_account,
                 "containers": [{"name": "app", "image": "app"}]}
    });
    test_app::pod_review("admission.k8s.io/v1", uid, &pod)
}

/// Sends SIGTERM the way the kubelet does.
fn sigterm(pid: u32) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) takes plain integers; the child is ours and still running (never reaped).
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(
        sent,
        0,
        "kill({pid}, SIGTERM): {}",
        std::io::Error::last_os_error()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_fails_readiness_at_once_serves_through_the_delay_drains_and_exits_0() {
    let fake = FakeApiServer::start_with_workload().await;
    let pki = generate_ca_and_leaf(&["localhost"]);
    let dir = TempDir::new().expect("tempdir");
    let mut app = start_binary(dir.path(), pki.path(), &fake).await;
    let ca = pki.ca.pem.clone();

    // The real process admits over TLS with its cached service account.
    let (status, body, _) = post(
        app.webhook,
        &ca,
        PATH,
        &review("before", "workload"),
        Http::V2,
    )
    .await
    .expect("review before SIGTERM");
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"]["allowed"], true, "{body}");
    assert!(body["response"]["patch"].is_string(), "{body}");

    // The build the process reports on /metrics is the one `azwi-webhook version` prints.
    let (status, scrape) = get_plain(app.metrics, "/metrics").await.expect("scrape");
    assert_eq!(status, 200);
    let build_info = format!(
        r#"azwi_build_info{{build_date="{}",commit="{}",version="{}"}} 1"#,
        azwi_webhook::build_info::build_date(),
        azwi_webhook::build_info::GIT_COMMIT,
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        scrape.lines().any(|l| l == build_info),
        "{build_info} not in\n{scrape}"
    );

    // A review that will still be in flight when the drain starts: an uncached service account costs
    // a live GET, which the fake holds for twice the shutdown delay.
    fake.delay_endpoint(Endpoint::GetServiceAccount, SHUTDOWN_DELAY * 2);
    let in_flight = {
        let (addr, ca) = (app.webhook, ca.clone());
        tokio::spawn(
            async move { post(addr, &ca, PATH, &review("slow", "new-sa"), Http::V2).await },
        )
    };
    assert!(
        eventually(Duration::from_secs(5), || async {
            fake.count(Endpoint::GetServiceAccount) >= 1
        })
        .await,
        "the slow review never reached the API server:\n{}",
        app.log()
    );

    let signalled = Instant::now();
    sigterm(app.child.pid());

    // Readiness fails at once. A fresh connection getting an answer proves the process is alive and
    // the health listener not yet drained, i.e. this is inside the delay, not after it.
    let (answer, after) = loop {
        match app.readyz().await {
            Some((200, _)) if signalled.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Some((200, _)) => panic!("/readyz stayed 200 after SIGTERM:\n{}", app.log()),
            other => break (other, signalled.elapsed()),
        }
    };
    let Some((status, pending)) = answer else {
        panic!("/readyz stopped answering instead of failing ({after:?} after SIGTERM)");
    };
    assert_eq!(status, 503, "{pending}");
    assert!(pending.contains("shutting down"), "{pending}");
    assert!(
        after < SHUTDOWN_DELAY,
        "readiness failed only {after:?} after SIGTERM"
    );
    assert!(app.child.exited().is_none(), "exited during the delay");

    // The listeners keep serving during the delay: a new connection is still accepted and answered.
    let (status, body, _) = post(
        app.webhook,
        &ca,
        PATH,
        &review("during", "workload"),
        Http::V2,
    )
    .await
    .expect("a review during the shutdown delay is served");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _) = get_plain(app.health, "/healthz")
        .await
        .expect("/healthz during the delay");
    assert_eq!(status, 200);

    // Then the drain: the webhook listener stops accepting while the slow review is still running.
    let webhook = app.webhook;
    assert!(
        eventually(Duration::from_secs(5), || async move {
            tokio::net::TcpStream::connect(webhook).await.is_err()
        })
        .await,
        "the webhook listener never closed:\n{}",
        app.log()
    );
    let drained = signalled.elapsed();
    assert!(
        drained >= SHUTDOWN_DELAY,
        "stopped accepting {drained:?} after SIGTERM, before the {SHUTDOWN_DELAY:?} delay"
    );
    assert!(
        !in_flight.is_finished(),
        "the slow review must still be in flight when the drain starts"
    );

    // The in-flight review is answered in full: the service account does not exist, so a complete,
    // reasoned denial (400), not a dropped stream.
    let (status, body, _) = in_flight
        .await
        .expect("client task")
        .expect("the in-flight review is answered during the drain");
    let body: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"]["uid"], "slow");
    assert_eq!(body["response"]["allowed"], false, "{body}");
    assert_eq!(body["response"]["status"]["code"], 400, "{body}");

    let exit = app.child.wait_exit(Duration::from_secs(10)).await;
    let log = app.log();
    let exit = exit.unwrap_or_else(|| panic!("still running 10 s after the drain:\n{log}"));
    assert_eq!(exit.code(), Some(0), "{exit}:\n{log}");
    assert!(log.contains("received SIGTERM"), "{log}");
    assert!(
        log.contains("deprecated upstream flag ignored") && log.contains("--arc-cluster"),
        "{log}"
    );
    assert!(log.contains("shutdown complete"), "{log}");
    eprintln!(
        "sigterm: unready after {after:?}, drain after {drained:?}, exit after {:?}",
        signalled.elapsed()
    );
}
