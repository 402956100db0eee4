//! First steps that work: the shell commands shown in README.md and in manifests/examples/ are run
//! as a reader on a fresh clone would run them, against the binary built for this test.
//!
//! What counts as a command (the convention README.md "Commands in this README" states):
//! - README.md: each line of a ```` ```sh ```` or ```` ```bash ```` block, a trailing `\` joining
//!   the next line; `#` lines are comments;
//! - manifests/examples/**: comment lines of the form `# $ COMMAND` (any spaces after `#`).
//!
//! Each command is either run, from a temporary directory holding a copy of manifests/, with an
//! empty environment (PATH and an empty HOME only), and must exit 0; or it is listed in [`SKIPPED`]
//! with the reason it cannot run here (a cluster, Go, the command that runs this very test, or
//! files that stand for the reader's own). A command in neither fails the test, so a new command in
//! the docs is checked or its skip is explained. `azwi-webhook`, `target/release/azwi-webhook` and
//! `cargo run -q --` all run the binary under test; `kubectl kustomize` runs when kubectl is on
//! PATH.

#[path = "support/process.rs"]
mod process;
#[path = "support/tls.rs"]
mod tls_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use process::ChildGuard;
use tempfile::TempDir;

/// Commands that cannot run offline here, matched by prefix, with the reason.
const SKIPPED: &[(&str, &str)] = &[
    (
        "cargo nextest run",
        "runs the whole test suite, this test included",
    ),
    (
        "cargo build --release",
        "a release build; the test runs the binary cargo built for it",
    ),
    (
        "e2e/run.sh",
        "needs Go and builds kube-apiserver and etcd (about 13 minutes)",
    ),
    ("helm install", "needs a cluster"),
    ("helm upgrade", "needs a cluster"),
    ("kubectl apply", "needs a cluster"),
    (
        "AZURE_TENANT_ID=<tenant> target/release/azwi-webhook serve",
        "serve needs a cluster (and a tenant of your own)",
    ),
    (
        "azwi-webhook inject -f app.yaml",
        "app.yaml and cm.yaml stand for your own manifests",
    ),
];

/// Programs the documents name for the binary under test.
const BINARY_NAMES: &[&str] = &["cargo run -q --", "target/release/azwi-webhook"];

/// Run for its whole output, not for long: every runnable command takes well under a second.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Shown {
    /// Where the command is shown: file and line.
    place: String,
    command: String,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The commands of the ```sh / ```bash blocks of a Markdown document.
fn markdown_commands(file: &str) -> Vec<Shown> {
    let text = std::fs::read_to_string(repo().join(file)).expect("readable document");
    let mut shown = Vec::new();
    let mut in_shell_block = false;
    let mut pending: Option<Shown> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_shell_block =
                !in_shell_block && matches!(info.split_whitespace().next(), Some("sh" | "bash"));
            continue;
        }
        if !in_shell_block {
            continue;
        }
        let place = format!("{file}:{}", i + 1);
        push_line(&mut shown, &mut pending, place, trimmed);
    }
    assert!(
        pending.is_none(),
        "{file}: a command ends with `\\` at the end of its block"
    );
    shown
}

/// The `# $ COMMAND` lines of every file under `dir`.
fn comment_commands(dir: &str) -> Vec<Shown> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .expect("readable directory")
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    let mut shown = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable file");
        let file = path
            .strip_prefix(repo())
            .expect("under the repository")
            .display()
            .to_string();
        let mut pending = None;
        for (i, line) in text.lines().enumerate() {
            let Some(comment) = line.trim_start().strip_prefix('#') else {
                continue;
            };
            let Some(command) = comment.trim_start().strip_prefix("$ ") else {
                continue;
            };
            push_line(
                &mut shown,
                &mut pending,
                format!("{file}:{}", i + 1),
                command.trim(),
            );
        }
        assert!(pending.is_none(), "{file}: a `# $` command ends with `\\`");
    }
    shown
}

/// Adds one shell line: a comment or blank line is skipped, a trailing `\` continues the command.
fn push_line(shown: &mut Vec<Shown>, pending: &mut Option<Shown>, place: String, line: &str) {
    if pending.is_none() && (line.is_empty() || line.starts_with('#')) {
        return;
    }
    let (part, continues) = match line.strip_suffix('\\') {
        Some(part) => (part.trim_end(), true),
        None => (line, false),
    };
    let current = pending.get_or_insert(Shown {
        place,
        command: String::new(),
    });
    if !current.command.is_empty() {
        current.command.push(' ');
    }
    current.command.push_str(part);
    if !continues {
        shown.extend(pending.take());
    }
}

fn skip_reason(command: &str) -> Option<&'static str> {
    SKIPPED
        .iter()
        .find(|(prefix, _)| command.starts_with(prefix))
        .map(|(_, reason)| *reason)
}

/// The command with every name of the binary under test turned into `azwi-webhook`.
fn with_binary(command: &str) -> String {
    BINARY_NAMES.iter().fold(command.to_owned(), |c, name| {
        c.replace(name, "azwi-webhook")
    })
}

fn runnable(command: &str) -> bool {
    [
        "azwi-webhook inject",
        "azwi-webhook certs",
        "azwi-webhook version",
    ]
    .iter()
    .any(|program| command.contains(program))
        || command.starts_with("kubectl kustomize ")
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("readable directory") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A fresh clone, as far as the commands look: manifests/, a bin directory whose `azwi-webhook` is
/// the binary under test (and `kubectl`, when the machine has it), an empty home.
struct Workspace {
    dir: TempDir,
    path: String,
}

impl Workspace {
    fn new(kubectl: Option<&Path>) -> Self {
        let dir = TempDir::new().expect("tempdir");
        copy_dir(&repo().join("manifests"), &dir.path().join("manifests"));
        let bin = dir.path().join(".bin");
        std::fs::create_dir(&bin).expect("mkdir");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_azwi-webhook"), bin.join("azwi-webhook"))
            .expect("symlink the binary");
        if let Some(kubectl) = kubectl {
            std::os::unix::fs::symlink(kubectl, bin.join("kubectl")).expect("symlink kubectl");
        }
        std::fs::create_dir(dir.path().join(".home")).expect("mkdir");
        let path = format!("{}:/usr/bin:/bin", bin.display());
        Workspace { dir, path }
    }

    /// Runs `command` with `sh`; (exit code, stdout, stderr).
    async fn run(&self, command: &str, n: usize) -> (Option<i32>, String, String) {
        let root = self.dir.path();
        let (out, err) = (
            root.join(format!(".out-{n}")),
            root.join(format!(".err-{n}")),
        );
        let mut child = ChildGuard(
            Command::new("sh")
                .args(["-c", command])
                .current_dir(root)
                .env_clear()
                .env("PATH", &self.path)
                .env("HOME", root.join(".home"))
                .stdin(Stdio::null())
                .stdout(std::fs::File::create(&out).expect("stdout file"))
                .stderr(std::fs::File::create(&err).expect("stderr file"))
                .spawn()
                .expect("spawn sh"),
        );
        let status = child.wait_exit(COMMAND_DEADLINE).await;
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        let status =
            status.unwrap_or_else(|| panic!("{command}: still running after {COMMAND_DEADLINE:?}"));
        (status.code(), read(&out), read(&err))
    }
}

#[tokio::test]
async fn shown_commands_run_offline_or_say_why_not() {
    let mut shown = markdown_commands("README.md");
    shown.extend(comment_commands("manifests/examples"));
    let kubectl = on_path("kubectl");
    let workspace = Workspace::new(kubectl.as_deref());

    let (mut ran, mut skipped, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for (n, Shown { place, command }) in shown.iter().enumerate() {
        if let Some(reason) = skip_reason(command) {
            skipped.push(format!("{place}: {command}\n    skipped: {reason}"));
            continue;
        }
        let to_run = with_binary(command);
        if !runnable(&to_run) {
            failures.push(format!(
                "{place}: {command}\n    neither runnable offline nor in SKIPPED with a reason"
            ));
            continue;
        }
        if to_run.starts_with("kubectl ") && kubectl.is_none() {
            skipped.push(format!(
                "{place}: {command}\n    skipped: kubectl is not on PATH"
            ));
            continue;
        }
        let (code, stdout, stderr) = workspace.run(&to_run, n).await;
        if code == Some(0) && !stdout.is_empty() {
            ran.push(format!("{place}: {command}"));
        } else {
            failures.push(format!(
                "{place}: {command}\n    exit {code:?}, {} bytes on stdout; stderr:\n{stderr}",
                stdout.len()
            ));
        }
    }
    eprintln!("ran:\n  {}\n{}", ran.join("\n  "), skipped.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The first steps themselves: the Quickstart's and the demo's offline injection.
    for must_run in [
        "README.md",
        "manifests/examples/demo.yaml",
        "manifests/examples/kustomization.yaml",
    ] {
        assert!(
            ran.iter().any(|r| r.starts_with(must_run)),
            "no command of {must_run} ran: {ran:?}"
        );
    }
}
