//! The fake API server itself, checked through the real kube client, so later tests (reflector, RBAC,
//! discovery) can rely on it behaving like a Kubernetes API server.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;

use std::time::Duration;

use fake_apiserver::{Endpoint, FakeApiServer, FakeServiceAccount, Outage, RbacRule};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{ListParams, PartialObjectMeta, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use kube::Api;

const DEADLINE: Duration = Duration::from_secs(5);

fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    items
        .iter()
        .map(|item| item.meta().name.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn version_reports_the_configured_git_version() {
    let fake = FakeApiServer::start().await;
    fake.set_git_version("v1.29.7");

    let info = fake.client().apiserver_version().await.expect("version");

    assert_eq!(
        (
            info.major.as_str(),
            info.minor.as_str(),
            info.git_version.as_str()
        ),
        ("1", "29", "v1.29.7")
    );
    assert_eq!(fake.count(Endpoint::Version), 1);
}

#[tokio::test]
async fn get_without_metadata_accept_returns_the_full_object() {
    let fake = FakeApiServer::start().await;
    fake.apply(FakeServiceAccount::new("apps", "workload").label("team", "a"));

    let sa = Api::<ServiceAccount>::namespaced(fake.client(), "apps")
        .get("workload")
        .await
        .expect("get");

    assert_eq!(
        sa.metadata
            .labels
            .unwrap_or_default()
            .get("team")
            .map(String::as_str),
        Some("a")
    );
    assert!(!fake.requests()[0]
        .accept
        .as_deref()
        .unwrap_or_default()
        .contains("PartialObjectMetadata"));
}

#[tokio::test]
async fn list_pages_with_limit_and_continue_in_both_forms() {
    let fake = FakeApiServer::start().await;
    for name in ["a", "b", "c"] {
        fake.add_service_account("apps", name, &[]);
    }
    fake.add_service_account("other", "d", &[]);
    let metadata = Api::<PartialObjectMeta<ServiceAccount>>::all(fake.client());

    let first = metadata
        .list(&ListParams::default().limit(2))
        .await
        .expect("page 1");
    let token = first.metadata.continue_.clone().expect("continue token");
    let second = metadata
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .expect("page 2");

    assert_eq!(names(&first.items), ["a", "b"]);
    assert_eq!(names(&second.items), ["c", "d"]);
    assert_eq!(second.metadata.continue_, None);
    assert_eq!(first.metadata.resource_version.as_deref(), Some("4"));
    let accept = fake.requests()[0].accept.clone().unwrap_or_default();
    assert!(accept.contains("as=PartialObjectMetadataList"), "{accept}");

    let full = Api::<ServiceAccount>::namespaced(fake.client(), "other")
        .list(&ListParams::default())
        .await
        .expect("namespaced full list");
    assert_eq!(names(&full.items), ["d"]);
}

#[tokio::test]
async fn label_selector_filters_lists() {
    let fake = FakeApiServer::start().await;
    fake.apply(FakeServiceAccount::new("apps", "a").label("team", "x"));
    fake.apply(FakeServiceAccount::new("apps", "b").label("team", "y"));

    let list = Api::<ServiceAccount>::all(fake.client())
        .list(&ListParams::default().labels("team=y"))
        .await
        .expect("list");

    assert_eq!(names(&list.items), ["b"]);
}

#[tokio::test]
async fn watch_resumes_after_a_resource_version() {
    let fake = FakeApiServer::start().await;
    let created = fake.add_service_account("apps", "a", &[]);
    fake.set_annotations("apps", "a", &[("k", "v")]);
    fake.delete_service_account("apps", "a");
    let api = Api::<PartialObjectMeta<ServiceAccount>>::namespaced(fake.client(), "apps");

    let stream = api
        .watch(
            &WatchParams::default().disable_bookmarks(),
            &created.to_string(),
        )
        .await
        .expect("watch");
    let events: Vec<_> = tokio::time::timeout(DEADLINE, stream.take(2).try_collect::<Vec<_>>())
        .await
        .expect("events in time")
        .expect("no stream error");

    assert!(matches!(&events[0], WatchEvent::Modified(sa)
        if sa.metadata.annotations.as_ref().is_some_and(|a| a.contains_key("k"))));
    assert!(
        matches!(&events[1], WatchEvent::Deleted(sa) if sa.metadata.name.as_deref() == Some("a"))
    );
}

#[tokio::test]
async fn watch_sends_bookmarks_when_allowed() {
    let fake = FakeApiServer::start().await;
    fake.set_bookmark_interval(Duration::from_millis(50));
    let version = fake.add_service_account("apps", "a", &[]);
    let api = Api::<PartialObjectMeta<ServiceAccount>>::all(fake.client());

    let mut stream = api
        .watch(&WatchParams::default(), &version.to_string())
        .await
        .expect("watch")
        .boxed();
    let event = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("bookmark in time")
        .expect("stream open")
        .expect("no error");

    match event {
        WatchEvent::Bookmark(bookmark) => {
            assert_eq!(bookmark.metadata.resource_version, version.to_string())
        }
        other => panic!("expected a bookmark, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_from_compacted_history_gets_410_gone() {
    let fake = FakeApiServer::start().await;
    let old = fake.add_service_account("apps", "a", &[]);
    fake.add_service_account("apps", "b", &[]);
    fake.compact_watch_history();
    let api = Api::<ServiceAccount>::all(fake.client());

    let mut stream = api
        .watch(&WatchParams::default(), &old.to_string())
        .await
        .expect("watch")
        .boxed();
    let event = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("event in time")
        .expect("stream open")
        .expect("no error");

    assert!(matches!(event, WatchEvent::Error(status) if status.code == 410));
}

#[tokio::test]
async fn watch_ends_after_timeout_seconds() {
    let fake = FakeApiServer::start().await;
    let api = Api::<ServiceAccount>::all(fake.client());
    let stream = api
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), "0")
        .await
        .expect("watch");

    let events: Vec<_> = tokio::time::timeout(DEADLINE, stream.collect::<Vec<_>>())
        .await
        .expect("the server should end the watch");

    assert!(events.is_empty());
}

#[tokio::test]
async fn streaming_list_watch_ends_initial_events_with_a_bookmark() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "a", &[]);
    let api = Api::<PartialObjectMeta<ServiceAccount>>::all(fake.client());
    let mut events = watcher(api, watcher::Config::default().streaming_lists()).boxed();

    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(DEADLINE, events.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("no error");
        match event {
            watcher::Event::InitApply(sa) => seen.push(sa.metadata.name.unwrap_or_default()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }

    assert_eq!(seen, ["a"]);
}

type MetaEvents = futures::stream::BoxStream<
    'static,
    Result<watcher::Event<PartialObjectMeta<ServiceAccount>>, watcher::Error>,
>;

async fn next_item(
    events: &mut MetaEvents,
) -> Result<watcher::Event<PartialObjectMeta<ServiceAccount>>, watcher::Error> {
    tokio::time::timeout(DEADLINE, events.next())
        .await
        .expect("event in time")
        .expect("stream open")
}

#[tokio::test]
async fn watcher_relists_when_its_resume_version_was_compacted() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "a", &[]);
    let api = Api::<PartialObjectMeta<ServiceAccount>>::all(fake.client());
    let mut events: MetaEvents = watcher(api, watcher::Config::default()).boxed();
    while !matches!(next_item(&mut events).await, Ok(watcher::Event::InitDone)) {}

    fake.add_service_account("apps", "b", &[]);
    while !matches!(next_item(&mut events).await, Ok(watcher::Event::Apply(_))) {}
    // While the watcher is cut off, history moves on and is compacted past the version it last saw.
    fake.set_outage(Outage::Refuse).await;
    fake.add_service_account("apps", "c", &[]);
    fake.compact_watch_history();
    fake.end_outage().await;

    let mut relisted = Vec::new();
    loop {
        match next_item(&mut events).await {
            Ok(watcher::Event::InitApply(sa)) => {
                relisted.push(sa.metadata.name.unwrap_or_default())
            }
            Ok(watcher::Event::InitDone) => break,
            _ => {}
        }
    }
    assert_eq!(relisted, ["a", "b", "c"]);
}

fn review(user: &str, groups: &[&str], verb: &str, name: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_owned()),
            groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some("apps".to_owned()),
                verb: Some(verb.to_owned()),
                group: Some("cid.wi.aks.azure.com".to_owned()),
                resource: Some("identitybindings".to_owned()),
                name: Some(name.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

#[tokio::test]
async fn subject_access_reviews_are_answered_from_rules() {
    let fake = FakeApiServer::start().await;
    fake.add_rule(
        RbacRule::allow()
            .user("system:serviceaccount:apps:workload")
            .verb("use")
            .resource("identitybindings")
            .name("client-1"),
    );
    fake.add_rule(RbacRule::allow().group("admins").verb("*"));
    fake.add_rule(RbacRule::deny().user("mallory"));
    let api = Api::<SubjectAccessReview>::all(fake.client());
    let ask = |user: &'static str,
               groups: &'static [&'static str],
               verb: &'static str,
               name: &'static str| {
        let api = api.clone();
        async move {
            api.create(&PostParams::default(), &review(user, groups, verb, name))
                .await
                .expect("review")
                .status
                .expect("status")
        }
    };

    let allowed = ask(
        "system:serviceaccount:apps:workload",
        &[],
        "use",
        "client-1",
    )
    .await;
    let other_name = ask(
        "system:serviceaccount:apps:workload",
        &[],
        "use",
        "client-2",
    )
    .await;
    let by_group = ask("alice", &["admins"], "use", "client-2").await;
    let denied = ask("mallory", &["admins"], "use", "client-1").await;

    assert!(allowed.allowed);
    assert!(!other_name.allowed);
    assert!(other_name.reason.unwrap_or_default().contains("client-2"));
    assert!(by_group.allowed);
    assert!(!denied.allowed && denied.denied == Some(true));
    assert_eq!(fake.reviews().len(), 4);
    assert_eq!(fake.count(Endpoint::SubjectAccessReview), 4);
}

#[tokio::test]
async fn injected_failures_count_down_and_outages_end() {
    let fake = FakeApiServer::start().await;
    fake.add_service_account("apps", "a", &[]);
    let api = Api::<ServiceAccount>::namespaced(fake.client(), "apps");
    fake.fail_times(Endpoint::GetServiceAccount, 500, 1);

    let first = api.get_metadata("a").await;
    let second = api.get_metadata("a").await;
    fake.set_outage(Outage::Unavailable).await;
    let during = api.get_metadata("a").await;
    fake.end_outage().await;
    let after = api.get_metadata("a").await;

    assert!(matches!(first, Err(kube::Error::Api(status)) if status.code == 500));
    assert!(second.is_ok());
    assert!(matches!(during, Err(kube::Error::Api(status)) if status.code == 503));
    assert!(after.is_ok());
    assert_eq!(fake.count(Endpoint::GetServiceAccount), 4);
}

#[tokio::test]
async fn discovery_resolves_every_served_resource_with_its_scope() {
    let fake = FakeApiServer::start().await;

    let discovery = kube::Discovery::new(fake.client())
        .run()
        .await
        .expect("discovery");

    let scope = |group: &str, kind: &str| {
        let gvk = kube::api::GroupVersionKind::gvk(group, "v1", kind);
        discovery
            .resolve_gvk(&gvk)
            .map(|(resource, caps)| (resource.plural, caps.scope))
    };
    use kube::discovery::Scope::{Cluster, Namespaced};
    assert_eq!(
        scope("", "ServiceAccount"),
        Some(("serviceaccounts".to_owned(), Namespaced))
    );
    assert_eq!(
        scope("", "Secret"),
        Some(("secrets".to_owned(), Namespaced))
    );
    assert_eq!(
        scope(
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration"
        ),
        Some(("mutatingwebhookconfigurations".to_owned(), Cluster))
    );
    assert_eq!(
        scope("coordination.k8s.io", "Lease"),
        Some(("leases".to_owned(), Namespaced))
    );
    assert_eq!(
        scope("authorization.k8s.io", "SubjectAccessReview"),
        Some(("subjectaccessreviews".to_owned(), Cluster))
    );
    assert!(fake.count(Endpoint::Discovery) >= 2);
}

#[tokio::test]
async fn discovery_lists_only_the_group_versions_it_serves() {
    let fake = FakeApiServer::start().await;

    let leases = fake
        .client()
        .list_api_group_resources("coordination.k8s.io/v1")
        .await
        .expect("coordination.k8s.io/v1");
    let apps = fake.client().list_api_group_resources("apps/v1").await;
    let core_v2 = fake.client().list_core_api_resources("v2").await;

    assert_eq!(leases.group_version, "coordination.k8s.io/v1");
    assert_eq!(names_of(&leases), ["leases"]);
    assert!(matches!(apps, Err(kube::Error::Api(status)) if status.code == 404));
    assert!(matches!(core_v2, Err(kube::Error::Api(status)) if status.code == 404));
}

fn names_of(list: &k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList) -> Vec<&str> {
    list.resources.iter().map(|r| r.name.as_str()).collect()
}

/// client-go asks for aggregated discovery first, and controller-runtime for protobuf, each with
/// JSON as a fallback; a server that answers plain JSON is what they fall back to.
#[tokio::test]
async fn discovery_answers_plain_json_when_the_client_also_accepts_json() {
    let fake = FakeApiServer::start().await;
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,\
                  application/vnd.kubernetes.protobuf,application/json";
    let request = |path: &str| {
        hyper::Request::get(path)
            .header(hyper::header::ACCEPT, accept)
            .body(Vec::new())
            .expect("request")
    };

    let groups: serde_json::Value = fake
        .client()
        .request(request("/apis"))
        .await
        .expect("/apis");
    let core: serde_json::Value = fake.client().request(request("/api")).await.expect("/api");

    assert_eq!(groups["kind"], "APIGroupList");
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|group| group["name"].as_str())
        .collect();
    assert!(names.contains(&"admissionregistration.k8s.io"), "{names:?}");
    assert_eq!(core["kind"], "APIVersions");
    assert_eq!(core["versions"], serde_json::json!(["v1"]));
}
