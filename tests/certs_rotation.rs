//! Self-managed certificates against the fake API server: Secret creation and reuse, caBundle publication
//! and drift repair, concurrent replicas, API server outages.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/rotation.rs"]
mod rotation;
#[path = "support/tls.rs"]
mod tls_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use fake_apiserver::{Endpoint, FakeApiServer, Kind, Outage};
use rotation::{cert_count, fast_config, Replica, MWC, NAMESPACE, SECRET};
use serde_json::json;
use tls_support::eventually;

async fn fake_with_config() -> FakeApiServer {
    let fake = FakeApiServer::start().await;
    fake.add_webhook_configuration(
        MWC,
        &["mutation.azure-workload-identity.io", "second.example.io"],
    );
    fake
}

fn secret_key(fake: &FakeApiServer, key: &str) -> Vec<u8> {
    fake.secret_data(NAMESPACE, SECRET)
        .and_then(|data| data.get(key).cloned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_creates_secret_and_patches_ca_bundle() {
    let fake = fake_with_config().await;
    let mut replica = Replica::new(&fake, fast_config());
    let report = replica.rotator.reconcile().await.expect("pass");

    assert_eq!(fake.count(Endpoint::CreateSecret), 1);
    assert!(report.bundle_patched);
    let secret = fake
        .object(Kind::Secret, NAMESPACE, SECRET)
        .expect("secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    for key in ["ca.crt", "ca.key", "tls.crt", "tls.key"] {
        assert!(!secret_key(&fake, key).is_empty(), "{key} missing");
    }
    let ca = secret_key(&fake, "ca.crt");
    assert_eq!(cert_count(&ca), 1);
    assert_eq!(fake.ca_bundles(MWC), vec![Some(ca.clone()), Some(ca)]);
    assert!(replica.resolver.is_loaded());
    assert_eq!(replica.loaded_count(), 1);

    // Converged: another pass writes nothing.
    let again = replica.rotator.reconcile().await.expect("pass");
    assert!(again.secret_written.is_empty() && !again.bundle_patched);
    assert_eq!(fake.count(Endpoint::UpdateSecret), 0);
    assert_eq!(fake.count(Endpoint::PatchWebhookConfig), 1);
    assert_eq!(replica.loaded_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_replica_reuses_the_secret() {
    let fake = fake_with_config().await;
    let mut first = Replica::new(&fake, fast_config());
    first.rotator.reconcile().await.expect("first");
    let ca = secret_key(&fake, "ca.crt");

    let mut second = Replica::new(&fake, fast_config());
    let report = second.rotator.reconcile().await.expect("second");
    assert!(report.secret_written.is_empty());
    assert!(!report.bundle_patched);
    assert_eq!(fake.count(Endpoint::CreateSecret), 1, "no second create");
    assert_eq!(fake.count(Endpoint::UpdateSecret), 0);
    assert_eq!(secret_key(&fake, "ca.crt"), ca, "same CA");
    assert_eq!(
        second.served_leaf(),
        first.served_leaf(),
        "same serving certificate"
    );
    assert_eq!(second.loaded_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_bundle_drift_is_repaired() {
    let fake = fake_with_config().await;
    let replica = Replica::new(&fake, fast_config());
    let task = replica.rotator.spawn();
    let ca = eventually(Duration::from_secs(5), || async {
        !secret_key(&fake, "ca.crt").is_empty() && fake.ca_bundles(MWC).iter().all(Option::is_some)
    })
    .await;
    assert!(ca, "bundle never published");
    let ca = secret_key(&fake, "ca.crt");

    fake.set_ca_bundles(
        MWC,
        b"-----BEGIN CERTIFICATE-----\nbogus\n-----END CERTIFICATE-----\n",
    )
    .expect("config exists");
    let started = std::time::Instant::now();
    let repaired = eventually(Duration::from_secs(3), || async {
        fake.ca_bundles(MWC)
            .iter()
            .all(|b| b.as_deref() == Some(ca.as_slice()))
    })
    .await;
    assert!(repaired, "drift not repaired within 3 s");
    eprintln!("caBundle drift repaired after {:?}", started.elapsed());
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_end_with_one_consistent_secret() {
    let fake = fake_with_config().await;
    let mut replicas: Vec<Replica> = (0..4).map(|_| Replica::new(&fake, fast_config())).collect();
    let results =
        futures::future::join_all(replicas.iter_mut().map(|r| r.rotator.reconcile())).await;
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    assert_consistent(&fake, &replicas);
    let creates = fake.count(Endpoint::CreateSecret);
    let first_conflicts: usize = results.iter().flatten().map(|r| r.conflicts).sum();

    // All four renew at once (a year later: inside the leaf renewal window): one update wins.
    let later = SystemTime::now() + Duration::from_secs(300 * 24 * 3600);
    let results =
        futures::future::join_all(replicas.iter_mut().map(|r| r.rotator.reconcile_at(later))).await;
    for result in &results {
        assert!(result.is_ok(), "{result:?}");
    }
    let renew_conflicts: usize = results.iter().flatten().map(|r| r.conflicts).sum();
    let written = results
        .iter()
        .flatten()
        .filter(|r| !r.secret_written.is_empty())
        .count();
    eprintln!(
        "creates attempted: {creates}, conflicts at start: {first_conflicts}, \
         renewals written: {written}, conflicts at renewal: {renew_conflicts}"
    );
    assert_eq!(written, 1, "exactly one replica wrote the renewal");
    assert_consistent(&fake, &replicas);
}

fn assert_consistent(fake: &FakeApiServer, replicas: &[Replica]) {
    let ca = secret_key(fake, "ca.crt");
    let tls = secret_key(fake, "tls.crt");
    let leaf_der = rustls_pki_types::pem::PemObject::from_pem_slice(&tls)
        .map(|c: rustls_pki_types::CertificateDer<'static>| c.as_ref().to_vec())
        .expect("leaf pem");
    assert!(fake
        .ca_bundles(MWC)
        .iter()
        .all(|b| b.as_deref() == Some(ca.as_slice())));
    for replica in replicas {
        assert_eq!(replica.served_leaf().as_deref(), Some(leaf_der.as_slice()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_server_down_at_start_then_recovers() {
    let fake = fake_with_config().await;
    fake.set_outage(Outage::Refuse).await;
    let replica = Replica::new(&fake, fast_config());
    let (loaded, resolver) = (replica.loaded.clone(), replica.resolver.clone());
    let task = replica.rotator.spawn();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        !task.is_finished(),
        "the rotator must keep retrying, not stop"
    );
    assert_eq!(
        loaded.load(Ordering::SeqCst),
        0,
        "not ready while the API server is down"
    );
    assert!(!resolver.is_loaded());

    fake.end_outage().await;
    let ready = eventually(Duration::from_secs(5), || async {
        loaded.load(Ordering::SeqCst) == 1
    })
    .await;
    assert!(ready, "never recovered");
    assert!(resolver.is_loaded());

    // 503s later on do not unready nor break serving.
    fake.set_outage(Outage::Unavailable).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(resolver.is_loaded() && !task.is_finished());
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_webhook_configuration_keeps_replica_unready_until_it_appears() {
    let fake = FakeApiServer::start().await;
    let mut replica = Replica::new(&fake, fast_config());
    let err = replica
        .rotator
        .reconcile()
        .await
        .expect_err("no configuration");
    assert!(err.to_string().contains(MWC), "{err}");
    // The certificate exists and is served at once, but readiness waits for the CA to be published.
    assert!(replica.resolver.is_loaded());
    assert_eq!(replica.loaded_count(), 0);

    fake.add_webhook_configuration(MWC, &["mutation.azure-workload-identity.io"]);
    replica.rotator.reconcile().await.expect("pass");
    assert_eq!(replica.loaded_count(), 1);
    assert_eq!(fake.count(Endpoint::CreateSecret), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_existing_empty_opaque_secret_is_filled_in_place() {
    // Upstream's manifests ship the Secret empty (type Opaque); its type is immutable.
    let fake = fake_with_config().await;
    fake.put_object(
        Kind::Secret,
        NAMESPACE,
        json!({"metadata": {"name": SECRET, "labels": {"keep": "me"}}, "type": "Opaque", "data": {"other": "eA=="}}),
    );
    let mut replica = Replica::new(&fake, fast_config());
    replica.rotator.reconcile().await.expect("pass");
    assert_eq!(fake.count(Endpoint::CreateSecret), 0);
    assert_eq!(fake.count(Endpoint::UpdateSecret), 1);
    let secret = fake
        .object(Kind::Secret, NAMESPACE, SECRET)
        .expect("secret");
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(secret["metadata"]["labels"]["keep"], "me");
    assert_eq!(secret_key(&fake, "other"), b"x");
    assert!(!secret_key(&fake, "tls.crt").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_api_server_enforces_resource_version_on_writes() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, Patch, PatchParams, PostParams};
    let fake = fake_with_config().await;
    let api: Api<Secret> = Api::namespaced(fake.client(), "ns");
    let mut secret = Secret::default();
    secret.metadata.name = Some("s".into());
    let created = api
        .create(&PostParams::default(), &secret)
        .await
        .expect("create");
    let again = api
        .create(&PostParams::default(), &secret)
        .await
        .expect_err("exists");
    assert!(
        matches!(again, kube::Error::Api(ref s) if s.code == 409),
        "{again:?}"
    );
    let updated = api
        .replace("s", &PostParams::default(), &created)
        .await
        .expect("update");
    let stale = api
        .replace("s", &PostParams::default(), &created)
        .await
        .expect_err("stale");
    assert!(
        matches!(stale, kube::Error::Api(ref s) if s.code == 409),
        "{stale:?}"
    );
    let rv = updated
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let merge = json!({"metadata": {"resourceVersion": rv, "labels": {"a": "b"}}});
    api.patch("s", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .expect("patch");
    let stale = api
        .patch("s", &PatchParams::default(), &Patch::Merge(&merge))
        .await
        .expect_err("stale patch");
    assert!(
        matches!(stale, kube::Error::Api(ref s) if s.code == 409),
        "{stale:?}"
    );
    assert_eq!(fake.count(Endpoint::CreateSecret), 2);
    assert_eq!(fake.count(Endpoint::UpdateSecret), 2);
    assert_eq!(fake.count(Endpoint::PatchSecret), 2);
    // Faults and outages apply to the new endpoints too.
    fake.fail_times(Endpoint::GetSecret, 500, 1);
    assert!(api.get("s").await.is_err());
    assert!(api.get("s").await.is_ok());
    // Leases.
    use k8s_openapi::api::coordination::v1::Lease;
    let leases: Api<Lease> = Api::namespaced(fake.client(), "ns");
    let mut lease = Lease::default();
    lease.metadata.name = Some("l".into());
    let created = leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("lease");
    leases
        .replace("l", &PostParams::default(), &created)
        .await
        .expect("renew");
    assert!(leases
        .replace("l", &PostParams::default(), &created)
        .await
        .is_err());
    assert_eq!(fake.count(Endpoint::UpdateLease), 2);
}
