//! The `azwi-webhook serve` binary as a child process: free loopback ports, a log file instead of a
//! pipe, readiness polling with a deadline, and a guard that never leaves the child running.
// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::tls_support::get_plain;

/// Kills the child when dropped unless it has already exited, so a failing assertion never leaves a
/// webhook process behind holding ports.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.0.try_wait().expect("try_wait")
    }

    /// Waits (polling, without blocking the async runtime for long) until the child exits.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let until = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= until {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Runs `command` to completion with stdin closed and stdout and stderr captured; returns (exit code,
/// stdout, stderr). Fails the test if it is still running after `deadline`. Only for commands that print
/// little (a pipe's buffer): the pipes are read once the child has exited.
pub fn run_to_exit(mut command: Command, deadline: Duration) -> (Option<i32>, String, String) {
    use std::io::Read;
    let mut child = ChildGuard(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the command"),
    );
    let until = Instant::now() + deadline;
    let status = loop {
        if let Some(status) = child.exited() {
            break status;
        }
        assert!(
            Instant::now() < until,
            "{command:?} still running after {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let read = |pipe: Option<&mut dyn Read>| {
        let mut text = String::new();
        pipe.expect("piped")
            .read_to_string(&mut text)
            .expect("utf-8 output");
        text
    };
    let stdout = read(child.0.stdout.as_mut().map(|p| p as &mut dyn Read));
    let stderr = read(child.0.stderr.as_mut().map(|p| p as &mut dyn Read));
    (status.code(), stdout, stderr)
}

/// A running `serve` and what a test needs to reach it.
pub struct Running {
    pub child: ChildGuard,
    pub webhook: SocketAddr,
    pub health: SocketAddr,
    pub metrics: SocketAddr,
    /// The child's stderr (JSON log lines), redirected to a file so it can never fill a pipe.
    pub log: PathBuf,
}

impl Running {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn readyz(&self) -> Option<(u16, String)> {
        get_plain(self.health, "/readyz").await.ok()
    }

    pub async fn metrics(&self) -> String {
        match get_plain(self.metrics, "/metrics").await {
            Ok((200, body)) => body,
            other => panic!("GET /metrics: {other:?}\n{}", self.log()),
        }
    }
}

/// Three distinct free loopback ports. The binary reports only its webhook address (in a log line),
/// not the health or metrics one, so the test picks the ports itself: bind port 0, note the port,
/// release it just before the spawn. Another process could grab one in between (a small race);
/// [`start_serve`] retries with fresh ports when the child reports a bind failure.
pub fn free_ports() -> [SocketAddr; 3] {
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .map(|l| l.local_addr().expect("addr"))
        .collect();
    [addrs[0], addrs[1], addrs[2]]
}

/// Starts `bin serve ARGS` with the three listeners on free loopback ports and an environment of
/// exactly `env` plus `HOME=dir` (nothing leaks in from the machine running the tests), and waits
/// up to `ready_within` for `/readyz` 200.
pub async fn start_serve<A, K, V>(
    bin: &Path,
    dir: &Path,
    args: &[A],
    env: &[(K, V)],
    ready_within: Duration,
) -> Running
where
    A: AsRef<OsStr>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    for attempt in 1..=3 {
        let [webhook, health, metrics] = free_ports();
        let log = dir.join(format!("stderr-{attempt}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .arg("serve")
            .args(args)
            .arg(format!("--webhook-addr={webhook}"))
            .arg(format!("--health-addr={health}"))
            .arg(format!("--metrics-addr={metrics}"))
            .env_clear()
            .env("HOME", dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn azwi-webhook");
        let mut running = Running {
            child: ChildGuard(child),
            webhook,
            health,
            metrics,
            log,
        };
        let until = Instant::now() + ready_within;
        let mut ready = false;
        while !ready && running.child.exited().is_none() && Instant::now() < until {
            ready = matches!(running.readyz().await, Some((200, _)));
            if !ready {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        match running.child.exited() {
            None if ready => return running,
            None => panic!(
                "never ready: {:?}\n{}",
                running.readyz().await,
                running.log()
            ),
            // Lost the port race (see `free_ports`): try again with fresh ports.
            Some(_) if running.log().contains("cannot listen on") && attempt < 3 => continue,
            Some(status) => panic!("exited during startup with {status}:\n{}", running.log()),
        }
    }
    unreachable!("the last attempt returns or panics")
}
