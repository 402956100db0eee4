//! Go-style single-dash long flags.
//!
//! Upstream parsed flags with Go's `flag` package, which accepts `-log-level=info` as well as
//! `--log-level=info`. Existing Deployments may use either, so before clap sees the arguments we rewrite
//! `-name` / `-name=value` to the double-dash form, but only when `name` is one of our long flags: short
//! options (`-f FILE`), `-` (stdin) and values are left alone, and so is everything after a bare `--`.

use std::collections::BTreeSet;
use std::ffi::OsString;

use clap::CommandFactory;

use super::cli::Cli;

/// Parses `args` (program name first) after rewriting Go-style flags; clap's usual errors, exit code 2.
pub fn parse_go_style<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    use clap::Parser;
    Cli::try_parse_from(normalize_go_style_flags(args))
}

/// Rewrites `-long-name[=v]` to `--long-name[=v]` for every long flag the CLI defines.
pub fn normalize_go_style_flags<I, T>(args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let long_names = long_flag_names();
    let mut after_double_dash = false;
    let mut out = Vec::new();
    for (i, arg) in args.into_iter().map(Into::into).enumerate() {
        if i == 0 || after_double_dash {
            out.push(arg);
            continue;
        }
        if arg == "--" {
            after_double_dash = true;
            out.push(arg);
            continue;
        }
        let rewritten = arg.to_str().and_then(|s| {
            let rest = s.strip_prefix('-').filter(|r| !r.starts_with('-'))?;
            let name = rest.split_once('=').map_or(rest, |(name, _)| name);
            (name.len() > 1 && long_names.contains(name)).then(|| OsString::from(format!("-{s}")))
        });
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

/// Every long flag of the command and its subcommands (plus clap's `help` and `version`).
fn long_flag_names() -> BTreeSet<String> {
    fn collect(cmd: &clap::Command, names: &mut BTreeSet<String>) {
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long() {
                names.insert(long.to_owned());
            }
        }
        for sub in cmd.get_subcommands() {
            collect(sub, names);
        }
    }
    let mut names = BTreeSet::from(["help".to_owned(), "version".to_owned()]);
    collect(&Cli::command(), &mut names);
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(args: &[&str]) -> Vec<String> {
        normalize_go_style_flags(args.iter().copied())
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn rewrites_known_single_dash_long_flags_only() {
        assert_eq!(
            norm(&[
                "azwi-webhook",
                "-log-level=info",
                "-audience",
                "x",
                "-disable-cert-rotation"
            ]),
            [
                "azwi-webhook",
                "--log-level=info",
                "--audience",
                "x",
                "--disable-cert-rotation"
            ]
        );
        assert_eq!(
            norm(&[
                "azwi-webhook",
                "inject",
                "-f",
                "-",
                "-filename=a.yaml",
                "-unknown",
                "-"
            ]),
            [
                "azwi-webhook",
                "inject",
                "-f",
                "-",
                "--filename=a.yaml",
                "-unknown",
                "-"
            ]
        );
        assert_eq!(
            norm(&["-log-level", "--", "-log-level"]),
            ["-log-level", "--", "-log-level"]
        );
    }
}
