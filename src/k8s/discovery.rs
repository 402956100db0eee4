//! The API server's version, read at startup and refreshed periodically, to decide whether injected
//! proxy sidecars may be native sidecars (init containers with `restartPolicy: Always`).
//!
//! Until the first successful read the answer is "no": classic sidecars (a plain extra container)
//! work on every Kubernetes version, while a native sidecar sent to an API server that does not know
//! the field would be dropped or rejected. Being wrong in the safe direction costs only the ordering
//! guarantees native sidecars add. A failed read is never fatal: it is logged and retried with
//! backoff, and a value once learned is kept while refreshes fail (clusters do not downgrade).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use k8s_openapi::apimachinery::pkg::version::Info;
use kube::Client;
use tokio::task::JoinHandle;

/// First version where the webhook uses native sidecars. The SidecarContainers feature is beta (on by
/// default, but switchable off) from 1.29 and GA in 1.33; the project's threshold is 1.32, leaving the
/// earliest beta releases on classic sidecars.
pub const NATIVE_SIDECARS_SINCE: ServerVersion = ServerVersion {
    major: 1,
    minor: 32,
    patch: 0,
};

/// A `major.minor.patch` Kubernetes version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl ServerVersion {
    /// Parses a `gitVersion` such as `v1.33.2`, `v1.33.2-gke.100` or `v1.32.0+k3s1`: optional leading
    /// `v`, then `major.minor[.patch]`, then anything after a `-` or `+` (pre-release, build, vendor
    /// suffix) is ignored. `None` when the numbers are missing or not numbers.
    pub fn parse(git_version: &str) -> Option<Self> {
        let text = git_version.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let number = |part: Option<&str>| part?.parse::<u64>().ok();
        let major = number(parts.next())?;
        let minor = number(parts.next())?;
        let patch = match parts.next() {
            None => 0,
            some => number(some)?,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
        })
    }

    /// The version in a `/version` answer: `gitVersion`, else the `major`/`minor` fields, which some
    /// distributions fill with a trailing `+` (`"minor": "32+"`).
    pub fn from_info(info: &Info) -> Option<Self> {
        Self::parse(&info.git_version).or_else(|| {
            let number = |field: &str| field.trim_end_matches('+').parse::<u64>().ok();
            Some(Self {
                major: number(&info.major)?,
                minor: number(&info.minor)?,
                patch: 0,
            })
        })
    }

    pub fn supports_native_sidecars(self) -> bool {
        self >= NATIVE_SIDECARS_SINCE
    }
}

/// Whether a `gitVersion` string allows native sidecars; unparsable means no.
pub fn native_sidecars_for(git_version: &str) -> bool {
    ServerVersion::parse(git_version).is_some_and(ServerVersion::supports_native_sidecars)
}

/// How often to read the version, and how to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryOptions {
    /// Between successful reads (API servers are upgraded in place).
    pub refresh_interval: Duration,
    /// First retry delay after a failure; doubles up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Limit on one `/version` request.
    pub request_timeout: Duration,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        Self {
            refresh_interval: Duration::from_secs(600),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// What is known about the API server; cheap to clone and to read on the admission path.
#[derive(Clone, Default)]
pub struct Discovery {
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    native_sidecars: AtomicBool,
    git_version: ArcSwapOption<String>,
}

impl Discovery {
    /// Starts reading the version on the current Tokio runtime; returns at once (the first read
    /// happens in the background). Use a [`super::client::ClientOptions::for_requests`] client.
    pub fn spawn(client: Client, options: DiscoveryOptions) -> (Self, JoinHandle<()>) {
        let discovery = Self::default();
        let task = tokio::spawn(run(discovery.clone(), client, options));
        (discovery, task)
    }

    /// A handle with a fixed answer and no background task (tests, offline `inject`).
    pub fn fixed(native_sidecars: bool) -> Self {
        let discovery = Self::default();
        discovery
            .state
            .native_sidecars
            .store(native_sidecars, Ordering::Relaxed);
        discovery
    }

    /// Whether injected sidecars should be native sidecars; `false` until the version is known.
    pub fn native_sidecars(&self) -> bool {
        self.state.native_sidecars.load(Ordering::Relaxed)
    }

    /// The last `gitVersion` read, if any.
    pub fn git_version(&self) -> Option<Arc<String>> {
        self.state.git_version.load_full()
    }

    fn record(&self, info: &Info) {
        let version = ServerVersion::from_info(info);
        let native = version.is_some_and(ServerVersion::supports_native_sidecars);
        let previous = self.state.git_version.load();
        if previous.as_deref().map(String::as_str) != Some(info.git_version.as_str()) {
            match version {
                Some(_) => tracing::info!(
                    git_version = %info.git_version,
                    native_sidecars = native,
                    "API server version"
                ),
                None => tracing::warn!(
                    git_version = %info.git_version,
                    "API server version not understood; using classic sidecars"
                ),
            }
            self.state
                .git_version
                .store(Some(Arc::new(info.git_version.clone())));
        }
        self.state.native_sidecars.store(native, Ordering::Relaxed);
    }
}

async fn run(discovery: Discovery, client: Client, options: DiscoveryOptions) {
    let mut retry = options.retry_min;
    let mut failures: u32 = 0;
    loop {
        let wait = match tokio::time::timeout(options.request_timeout, client.apiserver_version())
            .await
        {
            Ok(Ok(info)) => {
                discovery.record(&info);
                failures = 0;
                retry = options.retry_min;
                options.refresh_interval
            }
            failed => {
                let reason = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => format!("no answer within {:?}", options.request_timeout),
                };
                failures = failures.saturating_add(1);
                // One warning per run of failures; the rest would repeat it every minute.
                if failures == 1 {
                    tracing::warn!(
                        %reason,
                        native_sidecars = discovery.native_sidecars(),
                        "reading the API server version failed; retrying with backoff"
                    );
                } else {
                    tracing::debug!(%reason, failures, "reading the API server version failed again");
                }
                let wait = retry;
                retry = retry.saturating_mul(2).min(options.retry_max);
                wait
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_git_versions() {
        let v = |major, minor, patch| {
            Some(ServerVersion {
                major,
                minor,
                patch,
            })
        };
        let table = [
            ("v1.32.0", v(1, 32, 0)),
            ("1.32.0", v(1, 32, 0)),
            ("v1.33.2-gke.100", v(1, 33, 2)),
            ("v1.32.0+k3s1", v(1, 32, 0)),
            ("v1.33.1-eks-abc", v(1, 33, 1)),
            ("v1.30", v(1, 30, 0)),
            (" v1.31.9 ", v(1, 31, 9)),
            ("v1.34.0-alpha.1+abcdef", v(1, 34, 0)),
            ("", None),
            ("v", None),
            ("garbage", None),
            ("v1", None),
            ("v1.x.0", None),
            ("v1.32.0.1", None),
            ("v-1.32.0", None),
        ];
        for (text, want) in table {
            assert_eq!(ServerVersion::parse(text), want, "{text:?}");
        }
    }

    #[test]
    fn native_sidecars_from_one_thirty_two() {
        for yes in [
            "v1.32.0",
            "v1.33.1-eks-abc",
            "v1.40.0",
            "v2.0.0",
            "v1.32.0+k3s1",
        ] {
            assert!(native_sidecars_for(yes), "{yes}");
        }
        for no in ["v1.31.9", "v1.31.99-gke.1", "v0.99.0", "garbage", ""] {
            assert!(!native_sidecars_for(no), "{no}");
        }
    }

    #[test]
    fn info_falls_back_to_major_and_minor_fields() {
        let info = Info {
            git_version: "custom-build".into(),
            major: "1".into(),
            minor: "33+".into(),
            ..Info::default()
        };
        assert_eq!(
            ServerVersion::from_info(&info),
            Some(ServerVersion {
                major: 1,
                minor: 33,
                patch: 0
            })
        );
    }

    #[test]
    fn fixed_handles_answer_without_a_task() {
        assert!(Discovery::fixed(true).native_sidecars());
        assert!(!Discovery::fixed(false).native_sidecars());
        assert!(!Discovery::default().native_sidecars());
        assert!(Discovery::default().git_version().is_none());
    }
}
