//! Self-managed certificates react to changes within seconds: the rotator watches its
//! MutatingWebhookConfiguration and its Secret, so a `caBundle` changed behind its back (a GitOps tool
//! re-applying the configuration) is repaired long before the periodic pass, which here keeps the
//! production interval of 60 s. A failing watch backs off, and a writer that keeps undoing the repair is
//! not fought in a tight loop.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/rotation.rs"]
mod rotation;
#[path = "support/tls.rs"]
mod tls_support;

use std::time::{Duration, Instant};

use azwi_webhook::certs::RotationConfig;
use fake_apiserver::{Endpoint, FakeApiServer, Kind};
use rotation::{Replica, MWC, NAMESPACE, SECRET};
use tls_support::eventually;

const BOGUS: &[u8] = b"-----BEGIN CERTIFICATE-----\nbogus\n-----END CERTIFICATE-----\n";
/// Far below the 60 s periodic pass, far above what a watch needs on loopback.
const REPAIR_DEADLINE: Duration = Duration::from_secs(15);

/// The shipped configuration: periodic pass every 60 s, so only a watch can explain a quick repair.
fn production_config() -> RotationConfig {
    let config = RotationConfig::for_namespace(NAMESPACE);
    assert_eq!(config.check_interval, Duration::from_secs(60));
    config
}

async fn fake_with_config() -> FakeApiServer {
    let fake = FakeApiServer::start().await;
    fake.add_webhook_configuration(
        MWC,
        &["mutation.azure-workload-identity.io", "second.example.io"],
    );
    fake
}

fn secret_ca(fake: &FakeApiServer) -> Vec<u8> {
    fake.secret_data(NAMESPACE, SECRET)
        .and_then(|data| data.get("ca.crt").cloned())
        .unwrap_or_default()
}

fn bundles_are(fake: &FakeApiServer, bundle: &[u8]) -> bool {
    let bundles = fake.ca_bundles(MWC);
    !bundles.is_empty() && bundles.iter().all(|b| b.as_deref() == Some(bundle))
}

/// Waits until the CA is published and both watches are open.
async fn published(fake: &FakeApiServer) -> Vec<u8> {
    let ready = eventually(Duration::from_secs(10), || async {
        let ca = secret_ca(fake);
        !ca.is_empty()
            && bundles_are(fake, &ca)
            && fake.count(Endpoint::WatchWebhookConfigs) > 0
            && fake.count(Endpoint::WatchSecrets) > 0
    })
    .await;
    assert!(ready, "CA never published, or the watches never opened");
    secret_ca(fake)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_bundle_changed_behind_our_back_is_repaired_within_seconds() {
    let fake = fake_with_config().await;
    let task = Replica::new(&fake, production_config()).rotator.spawn();
    let ca = published(&fake).await;
    let watch_request = fake
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::WatchWebhookConfigs)
        .expect("watch request");
    assert!(
        watch_request
            .query
            .contains(&format!("fieldSelector=metadata.name%3D{MWC}")),
        "watched by name: {}",
        watch_request.query
    );
    let patches = fake.count(Endpoint::PatchWebhookConfig);

    fake.set_ca_bundles(MWC, BOGUS)
        .expect("configuration exists");
    let changed = Instant::now();
    let repaired = eventually(REPAIR_DEADLINE, || async { bundles_are(&fake, &ca) }).await;
    assert!(repaired, "caBundle not repaired within {REPAIR_DEADLINE:?}");
    eprintln!("caBundle repaired {:?} after the change", changed.elapsed());
    assert_eq!(
        fake.count(Endpoint::PatchWebhookConfig),
        patches + 1,
        "one repair write"
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_secret_is_recreated_and_published_within_seconds() {
    let fake = fake_with_config().await;
    let replica = Replica::new(&fake, production_config());
    let resolver = replica.resolver.clone();
    let task = replica.rotator.spawn();
    let old_ca = published(&fake).await;

    assert!(fake.delete_object(Kind::Secret, NAMESPACE, SECRET));
    let recreated = eventually(REPAIR_DEADLINE, || async {
        let ca = secret_ca(&fake);
        !ca.is_empty() && ca != old_ca && bundles_are(&fake, &ca)
    })
    .await;
    assert!(
        recreated,
        "Secret not recreated and published within {REPAIR_DEADLINE:?}"
    );
    assert_eq!(fake.count(Endpoint::CreateSecret), 2);
    assert!(resolver.is_loaded());
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_that_agree_write_once_and_then_stay_quiet() {
    let fake = fake_with_config().await;
    let tasks: Vec<_> = (0..2)
        .map(|_| Replica::new(&fake, production_config()).rotator.spawn())
        .collect();
    let ca = published(&fake).await;
    fake.set_ca_bundles(MWC, BOGUS)
        .expect("configuration exists");
    assert!(eventually(REPAIR_DEADLINE, || async { bundles_are(&fake, &ca) }).await);

    // Each write wakes both replicas; they must find nothing left to do. Nothing can be polled for
    // "no more writes", so watch a fixed window (covers several rounds of the 0.8 s settle delay).
    let writes = || {
        [
            Endpoint::PatchWebhookConfig,
            Endpoint::UpdateSecret,
            Endpoint::CreateSecret,
        ]
        .map(|e| fake.count(e))
    };
    // The repair's last write (or a losing replica's refused one) may still be on its way: start the
    // window only once the counts have held for longer than one settle delay.
    let settled = Instant::now() + Duration::from_secs(20);
    let mut before = writes();
    loop {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let now = writes();
        if now == before {
            break;
        }
        assert!(Instant::now() < settled, "replicas never stopped writing");
        before = now;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(writes(), before, "replicas kept writing");
    assert_eq!(secret_ca(&fake), ca);
    for task in tasks {
        task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_undoing_every_repair_is_answered_ever_more_slowly() {
    let fake = fake_with_config().await;
    let task = Replica::new(&fake, production_config()).rotator.spawn();
    let ca = published(&fake).await;
    let patches = fake.count(Endpoint::PatchWebhookConfig);

    // Another tool insisting on its own caBundle, re-applying it 20 ms after every repair.
    let window = Duration::from_secs(6);
    let until = Instant::now() + window;
    while Instant::now() < until {
        if !bundles_are(&fake, BOGUS) {
            fake.set_ca_bundles(MWC, BOGUS)
                .expect("configuration exists");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let repairs = fake.count(Endpoint::PatchWebhookConfig) - patches;
    eprintln!("{repairs} repairs in {window:?} against a writer undoing each");
    // Settle delays 0.8, 1.6, 3.2 s (+ up to 20 %): 3 or 4 repairs in 6 s; without pacing, hundreds.
    assert!(
        (2..=5).contains(&repairs),
        "{repairs} repairs in {window:?}"
    );

    // Once the other writer stops, the next repair sticks.
    assert!(
        eventually(Duration::from_secs(40), || async {
            bundles_are(&fake, &ca)
        })
        .await,
        "never repaired after the other writer stopped"
    );
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_watch_backs_off_and_the_periodic_pass_still_works() {
    let fake = fake_with_config().await;
    fake.fail(Endpoint::ListWebhookConfigs, 500);
    fake.fail(Endpoint::WatchWebhookConfigs, 500);
    let replica = Replica::new(&fake, production_config());
    let loaded = replica.loaded.clone();
    let task = replica.rotator.spawn();
    let started = Instant::now();

    // The first pass does not need the watch.
    assert!(
        eventually(Duration::from_secs(5), || async {
            loaded.load(std::sync::atomic::Ordering::SeqCst) == 1
        })
        .await
    );
    // A window is the only way to measure a retry rate.
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(started.elapsed())).await;
    let attempts = fake.count(Endpoint::ListWebhookConfigs);
    eprintln!(
        "{attempts} list attempts in {:?} while failing",
        started.elapsed()
    );
    // Delays 0.8 then 1.6 s (+ up to 20 %) allow 3 attempts in 4 s; retrying at once would be hundreds.
    assert!((2..=4).contains(&attempts), "{attempts} attempts");

    // Recovered (next attempt within 3.2 s + 20 %), the watch repairs changes again.
    fake.clear_faults();
    assert!(
        eventually(Duration::from_secs(10), || async {
            fake.count(Endpoint::WatchWebhookConfigs) > 0
        })
        .await,
        "watch never recovered"
    );
    let ca = secret_ca(&fake);
    fake.set_ca_bundles(MWC, BOGUS)
        .expect("configuration exists");
    assert!(eventually(REPAIR_DEADLINE, || async { bundles_are(&fake, &ca) }).await);
    task.abort();
}
