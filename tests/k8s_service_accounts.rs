//! The live service-account lookup against a fake API server, through the real kube client and TLS.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;

use std::time::{Duration, Instant};

use azwi_webhook::k8s::client::{client_from_config, ClientOptions};
use azwi_webhook::k8s::live::LiveServiceAccounts;
use azwi_webhook::k8s::service_accounts::{LookupError, ServiceAccounts};
use fake_apiserver::{Endpoint, FakeApiServer, Outage};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::PartialObjectMeta;
use kube::runtime::watcher;
use kube::Api;

const CLIENT_ID: &str = "azure.workload.identity/client-id";

fn live(fake: &FakeApiServer) -> LiveServiceAccounts {
    let client = client_from_config(fake.config(), &ClientOptions::for_requests()).expect("client");
    LiveServiceAccounts::new(client)
}

fn unavailable_reason(result: Result<impl std::fmt::Debug, LookupError>) -> String {
    match result {
        Err(LookupError::Unavailable {
            namespace,
            name,
            reason,
        }) => {
            assert_eq!((namespace.as_str(), name.as_str()), ("apps", "workload"));
            reason
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn found_service_account_returns_annotations_from_a_metadata_request() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "workload", &[(CLIENT_ID, "00000000-1111")]);

    let sa = live(&fake).get("apps", "workload").await.expect("found");

    assert_eq!(
        (sa.namespace.as_str(), sa.name.as_str()),
        ("apps", "workload")
    );
    assert_eq!(sa.annotations.get(CLIENT_ID), Some("00000000-1111"));
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.endpoint, Endpoint::GetServiceAccount);
    assert_eq!(
        request.path,
        "/api/v1/namespaces/apps/serviceaccounts/workload"
    );
    assert_eq!(
        request.accept.as_deref(),
        Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
    );
    assert!(request
        .user_agent
        .as_deref()
        .is_some_and(|ua| ua.starts_with("azwi-webhook/")));
}

#[tokio::test]
async fn missing_service_account_is_not_found_naming_namespace_and_name() {
    let fake = FakeApiServer::start().await;

    let error = live(&fake)
        .get("apps", "missing")
        .await
        .expect_err("missing");

    match &error {
        LookupError::NotFound { namespace, name } => {
            assert_eq!((namespace.as_str(), name.as_str()), ("apps", "missing"))
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(error.to_string().contains("apps/missing"));
}

#[tokio::test]
async fn server_error_is_unavailable_with_a_short_reason() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "workload", &[]);
    fake.fail(Endpoint::GetServiceAccount, 500);

    let reason = unavailable_reason(live(&fake).get("apps", "workload").await);

    assert!(reason.contains("500"), "{reason}");
    assert!(reason.len() < 400, "{reason}");
}

#[tokio::test]
async fn service_unavailable_is_reported_without_client_retries() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "workload", &[]);
    fake.set_outage(Outage::Unavailable).await;

    let reason = unavailable_reason(live(&fake).get("apps", "workload").await);

    assert!(reason.contains("503"), "{reason}");
    assert_eq!(fake.count(Endpoint::GetServiceAccount), 1);
}

#[tokio::test]
async fn closed_port_is_unavailable_without_hanging() {
    let fake = FakeApiServer::start().await;
    fake.set_outage(Outage::Refuse).await;
    let started = Instant::now();

    let result = tokio::time::timeout(Duration::from_secs(5), live(&fake).get("apps", "workload"))
        .await
        .expect("lookup must not hang");

    let reason = unavailable_reason(result);
    assert!(started.elapsed() < Duration::from_secs(4));
    assert!(reason.contains("Connection refused"), "{reason}");
    assert!(reason.len() < 400, "{reason}");
}

#[tokio::test]
async fn lookups_work_again_after_an_outage_ends() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "workload", &[(CLIENT_ID, "abc")]);
    let live = live(&fake);
    live.get("apps", "workload").await.expect("before outage");

    fake.set_outage(Outage::Refuse).await;
    unavailable_reason(live.get("apps", "workload").await);
    fake.end_outage().await;

    let sa = live.get("apps", "workload").await.expect("after outage");
    assert_eq!(sa.annotations.get(CLIENT_ID), Some("abc"));
}

#[tokio::test]
async fn slow_server_lets_the_callers_timeout_fire() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "workload", &[]);
    fake.delay(Duration::from_secs(30));
    let live = live(&fake);
    let started = Instant::now();

    let result =
        tokio::time::timeout(Duration::from_millis(300), live.get("apps", "workload")).await;

    assert!(result.is_err(), "the caller's timeout should have fired");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn lookup_deadline_turns_a_slow_server_into_unavailable() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "workload", &[]);
    fake.delay(Duration::from_secs(30));
    let live = live(&fake).with_timeout(Duration::from_millis(300));

    let reason = unavailable_reason(live.get("apps", "workload").await);

    assert!(reason.contains("no answer"), "{reason}");
}

#[tokio::test]
async fn client_read_timeout_bounds_a_silent_server() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "workload", &[]);
    fake.delay(Duration::from_secs(30));
    let options = ClientOptions {
        read_timeout: Some(Duration::from_millis(300)),
        ..ClientOptions::for_requests()
    };
    let client = client_from_config(fake.config(), &options).expect("client");
    let live = LiveServiceAccounts::new(client).with_timeout(Duration::from_secs(20));
    let started = Instant::now();

    unavailable_reason(live.get("apps", "workload").await);

    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn plain_http_fake_serves_lookups_too() {
    let fake = FakeApiServer::start_plain().await;
    fake.add_service_account("apps", "workload", &[(CLIENT_ID, "plain")]);

    let sa = live(&fake).get("apps", "workload").await.expect("found");

    assert_eq!(sa.annotations.get(CLIENT_ID), Some("plain"));
}

type MetaEvents = futures::stream::BoxStream<
    'static,
    Result<watcher::Event<PartialObjectMeta<ServiceAccount>>, watcher::Error>,
>;

async fn next_event(events: &mut MetaEvents) -> watcher::Event<PartialObjectMeta<ServiceAccount>> {
    tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("watcher event in time")
        .expect("stream continues")
        .expect("no watcher error")
}

#[tokio::test]
async fn metadata_watcher_sees_a_service_account_added_after_start() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "existing", &[]);
    let client = client_from_config(fake.config(), &ClientOptions::for_watches()).expect("client");
    let api = Api::<PartialObjectMeta<ServiceAccount>>::all(client);
    let mut events: MetaEvents = watcher(api, watcher::Config::default()).boxed();

    let mut initial = Vec::new();
    loop {
        match next_event(&mut events).await {
            watcher::Event::Init => {}
            watcher::Event::InitApply(sa) => initial.push(sa.metadata.name.unwrap_or_default()),
            watcher::Event::InitDone => break,
            other => panic!("unexpected event before InitDone: {other:?}"),
        }
    }
    assert_eq!(initial, vec!["existing".to_owned()]);

    fake.add_service_account("apps", "created-later", &[(CLIENT_ID, "late")]);
    let added = loop {
        if let watcher::Event::Apply(sa) = next_event(&mut events).await {
            break sa;
        }
    };

    assert_eq!(added.metadata.name.as_deref(), Some("created-later"));
    let annotations = added.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get(CLIENT_ID).map(String::as_str), Some("late"));
    let watch = fake
        .requests()
        .into_iter()
        .find(|r| r.endpoint == Endpoint::WatchServiceAccounts)
        .expect("a watch request");
    assert!(watch
        .accept
        .as_deref()
        .is_some_and(|a| a.contains("as=PartialObjectMetadata")));
}
