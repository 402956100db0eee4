//! API server version discovery against the fake API server.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/tls.rs"]
mod tls_support;

use std::time::Duration;

use azwi_webhook::k8s::client::{client_from_config, ClientOptions};
use azwi_webhook::k8s::discovery::{Discovery, DiscoveryOptions};
use fake_apiserver::{Endpoint, FakeApiServer, Outage};
use tls_support::assert_eventually;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(20);

/// Fast timings, so refreshes and retries happen within a test.
fn options() -> DiscoveryOptions {
    DiscoveryOptions {
        refresh_interval: Duration::from_millis(100),
        retry_min: Duration::from_millis(20),
        retry_max: Duration::from_millis(200),
        request_timeout: Duration::from_secs(2),
    }
}

struct Running {
    discovery: Discovery,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn spawn(fake: &FakeApiServer, options: DiscoveryOptions) -> Running {
    let client = client_from_config(fake.config(), &ClientOptions::for_requests()).expect("client");
    let (discovery, task) = Discovery::spawn(client, options);
    Running { discovery, task }
}

fn git_version(discovery: &Discovery) -> Option<String> {
    discovery.git_version().map(|v| v.as_str().to_owned())
}

#[tokio::test]
async fn reads_the_version_at_startup() {
    let fake = FakeApiServer::start().await;
    fake.set_git_version("v1.33.2-gke.100");
    let running = spawn(&fake, DiscoveryOptions::default());

    assert_eventually(DEADLINE, "the first read", || {
        running.discovery.git_version().is_some()
    })
    .await;

    assert!(running.discovery.native_sidecars());
    assert_eq!(
        git_version(&running.discovery).as_deref(),
        Some("v1.33.2-gke.100")
    );
    assert_eq!(fake.count(Endpoint::Version), 1);
}

#[tokio::test]
async fn old_api_server_means_classic_sidecars() {
    let fake = FakeApiServer::start().await;
    fake.set_git_version("v1.31.9");
    let running = spawn(&fake, DiscoveryOptions::default());

    assert_eventually(DEADLINE, "the first read", || {
        running.discovery.git_version().is_some()
    })
    .await;

    assert!(!running.discovery.native_sidecars());
}

#[tokio::test]
async fn periodic_refresh_picks_up_an_upgrade() {
    let fake = FakeApiServer::start().await;
    fake.set_git_version("v1.31.4");
    let running = spawn(&fake, options());
    assert_eventually(DEADLINE, "the first read", || {
        git_version(&running.discovery).as_deref() == Some("v1.31.4")
    })
    .await;
    assert!(!running.discovery.native_sidecars());

    fake.set_git_version("v1.32.0+k3s1");

    assert_eventually(DEADLINE, "the upgrade", || {
        running.discovery.native_sidecars()
    })
    .await;
    assert_eq!(
        git_version(&running.discovery).as_deref(),
        Some("v1.32.0+k3s1")
    );
}

#[tokio::test]
async fn api_server_down_at_start_is_classic_until_it_answers() {
    let fake = FakeApiServer::start().await;
    fake.set_git_version("v1.34.1");
    fake.set_outage(Outage::Refuse).await;
    let running = spawn(&fake, options());

    // Nothing can be learned while the port is closed; the value stays the safe default.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!running.discovery.native_sidecars());
    assert!(running.discovery.git_version().is_none());
    assert!(!running.task.is_finished(), "a failure is not fatal");

    fake.end_outage().await;
    assert_eventually(DEADLINE, "the first successful read", || {
        running.discovery.native_sidecars()
    })
    .await;
}

#[tokio::test]
async fn failed_refresh_keeps_the_last_known_version() {
    let fake = FakeApiServer::start().await;
    fake.set_git_version("v1.33.0");
    let running = spawn(&fake, options());
    assert_eventually(DEADLINE, "the first read", || {
        running.discovery.native_sidecars()
    })
    .await;

    fake.fail(Endpoint::Version, 500);
    let failures_before = fake.count(Endpoint::Version);
    assert_eventually(DEADLINE, "a few failed refreshes", || {
        fake.count(Endpoint::Version) >= failures_before + 3
    })
    .await;

    assert!(running.discovery.native_sidecars());
    assert_eq!(git_version(&running.discovery).as_deref(), Some("v1.33.0"));
}

#[tokio::test]
async fn unparsable_version_means_classic_sidecars() {
    let fake = FakeApiServer::start().await;
    fake.set_git_version("garbage");
    let running = spawn(&fake, DiscoveryOptions::default());

    assert_eventually(DEADLINE, "the first read", || {
        running.discovery.git_version().is_some()
    })
    .await;

    assert!(!running.discovery.native_sidecars());
}
