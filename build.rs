//! Records what is being built for `azwi-webhook version` and the `azwi_build_info` metric: the git
//! commit and the build time, as compile-time environment variables read by `src/build_info.rs`.
//!
//! - Commit: `AZWI_GIT_COMMIT` when set (a container build has no `.git`; pass it as a build
//!   argument), else `git rev-parse HEAD`, else "unknown".
//! - Build time: `SOURCE_DATE_EPOCH` when set (reproducible builds), else now.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

const COMMIT_OVERRIDE: &str = "AZWI_GIT_COMMIT";
const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";
const UNKNOWN: &str = "unknown";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={COMMIT_OVERRIDE}");
    println!("cargo:rerun-if-env-changed={SOURCE_DATE_EPOCH}");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());

    let commit = match non_empty_env(COMMIT_OVERRIDE) {
        Some(commit) => commit,
        None => {
            watch_git_head(&manifest_dir);
            git(&manifest_dir, &["rev-parse", "HEAD"]).unwrap_or_else(|| UNKNOWN.to_owned())
        }
    };
    let commit = if commit
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        commit
    } else {
        println!(
            "cargo:warning={COMMIT_OVERRIDE}={commit:?} is not a commit id; using {UNKNOWN:?}"
        );
        UNKNOWN.to_owned()
    };
    println!("cargo:rustc-env=AZWI_BUILD_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=AZWI_BUILD_EPOCH={}", build_epoch());
}

/// Seconds since the Unix epoch, or "unknown" when `SOURCE_DATE_EPOCH` is not an integer.
fn build_epoch() -> String {
    match non_empty_env(SOURCE_DATE_EPOCH) {
        Some(value) if value.parse::<i64>().is_ok() => value,
        Some(value) => {
            println!("cargo:warning={SOURCE_DATE_EPOCH}={value:?} is not a number of seconds; build date unknown");
            UNKNOWN.to_owned()
        }
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or_else(|_| UNKNOWN.to_owned(), |d| d.as_secs().to_string()),
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `git` output in `dir`, trimmed; `None` without git, outside a repository or on failure.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (output.status.success() && !text.is_empty()).then(|| text.to_owned())
}

/// Reruns this script when HEAD moves: HEAD itself (checkout), the branch it points to (commit) and
/// packed-refs. Only existing files: cargo reruns on every build for a path that does not exist.
fn watch_git_head(dir: &Path) {
    let mut paths = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        paths.push(branch);
    }
    for name in paths {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &name]) {
            let path = dir.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
}
