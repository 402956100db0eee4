//! The identity-binding RBAC check against a fake API server, through the real kube client and TLS:
//! the exact SubjectAccessReview sent, each `--rbac-check` mode with allowed, denied and failing
//! answers, TTLs, the size bound and single-flight under a burst.

#[path = "support/fake_apiserver.rs"]
mod fake_apiserver;
#[path = "support/tls.rs"]
mod tls_support;

use std::sync::Arc;
use std::time::Duration;

use azwi_webhook::k8s::authz::{
    authorize_pod, CacheConfig, CachedAuthorizer, PodAuthorization, SubjectAccessReviews, Verdict,
};
use azwi_webhook::k8s::client::{client_from_config, ClientOptions};
use azwi_webhook::mutate::client_ids::ClientIds;
use azwi_webhook::mutate::denial::{Denial, DenyReason};
use azwi_webhook::mutate::settings::RbacCheck;
use fake_apiserver::{Endpoint, FakeApiServer, Outage, RbacRule};
use serde_json::json;
use tls_support::eventually;
use tokio::time::Instant;

const NS: &str = "apps";
const SA: &str = "web";
const CID: &str = "aaaaaaaa-1111-2222-3333-444444444444";
const USER: &str = "system:serviceaccount:apps:web";

/// The rule a ClusterRole + ClusterRoleBinding for `client_id` amounts to.
fn grant(client_id: &str) -> RbacRule {
    RbacRule::allow()
        .user(USER)
        .api_group("cid.wi.aks.azure.com")
        .resource(client_id)
        .verb("use-managed-identity")
}

fn authorizer(fake: &FakeApiServer, config: CacheConfig) -> CachedAuthorizer {
    let client = client_from_config(fake.config(), &ClientOptions::for_requests()).expect("client");
    CachedAuthorizer::new(Arc::new(SubjectAccessReviews::new(client)), config)
}

fn ids(ids: &[&str]) -> ClientIds {
    ClientIds {
        ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        unresolvable: Vec::new(),
    }
}

fn in_secs(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

async fn authorize(
    authz: &CachedAuthorizer,
    mode: RbacCheck,
    client_ids: &[&str],
) -> PodAuthorization {
    authorize_pod(authz, mode, NS, SA, &ids(client_ids), in_secs(8)).await
}

fn denial(verdict: &Verdict) -> (DenyReason, &str) {
    match verdict {
        Verdict::Deny(denial) => (denial.reason, denial.message.as_str()),
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn warnings(verdict: &Verdict) -> &[String] {
    match verdict {
        Verdict::AllowWithWarnings(warnings) => warnings,
        other => panic!("expected warnings, got {other:?}"),
    }
}

#[tokio::test]
async fn sends_the_documented_subject_access_review() {
    let fake = FakeApiServer::start().await;
    fake.add_rule(grant(CID));
    let authz = authorizer(&fake, CacheConfig::default());

    let result = authorize(&authz, RbacCheck::Deny, &[CID]).await;

    assert_eq!(result.verdict, Verdict::Allow);
    let reviews = fake.reviews();
    assert_eq!(reviews.len(), 1);
    let review = &reviews[0];
    assert_eq!(review["apiVersion"], "authorization.k8s.io/v1");
    assert_eq!(review["kind"], "SubjectAccessReview");
    assert_eq!(
        review["spec"],
        json!({
            "user": USER,
            "groups": ["system:serviceaccounts", "system:serviceaccounts:apps", "system:authenticated"],
            "resourceAttributes": {
                "group": "cid.wi.aks.azure.com",
                "resource": CID,
                "verb": "use-managed-identity"
            }
        }),
        "cluster scope: no namespace, the client id is the resource"
    );
    let check = &result.checks[0];
    assert_eq!((check.result_label(), check.cached), ("allowed", false));
}

#[tokio::test]
async fn a_grant_to_the_service_accounts_group_counts() {
    let fake = FakeApiServer::start().await;
    fake.add_rule(
        RbacRule::allow()
            .group("system:serviceaccounts:apps")
            .api_group("cid.wi.aks.azure.com")
            .resource(CID)
            .verb("use-managed-identity"),
    );
    let authz = authorizer(&fake, CacheConfig::default());
    assert_eq!(
        authorize(&authz, RbacCheck::Deny, &[CID]).await.verdict,
        Verdict::Allow
    );
}

#[tokio::test]
async fn a_namespaced_grant_does_not_count() {
    // Only a ClusterRoleBinding grants an identity: the review is cluster-scoped.
    let fake = FakeApiServer::start().await;
    fake.add_rule(grant(CID).namespace(NS));
    let authz = authorizer(&fake, CacheConfig::default());
    let (reason, _) = denial(&authorize(&authz, RbacCheck::Deny, &[CID]).await.verdict);
    assert_eq!(reason, DenyReason::RbacDenied);
}

#[tokio::test]
async fn an_unauthorised_client_id_is_403_in_deny_mode_and_a_warning_in_warn_mode() {
    let fake = FakeApiServer::start().await;
    fake.add_rule(grant("granted"));
    let authz = authorizer(&fake, CacheConfig::default());

    let denied = authorize(&authz, RbacCheck::Deny, &["granted", CID]).await;
    let (reason, message) = denial(&denied.verdict);
    assert_eq!(reason, DenyReason::RbacDenied);
    assert!(
        message.starts_with(&format!(
            "service account apps/web may not use managed identity {CID}: grant it with a ClusterRole rule \
             {{apiGroups: [\"cid.wi.aks.azure.com\"], resources: [\"{CID}\"], verbs: [\"use-managed-identity\"]}} \
             bound by a ClusterRoleBinding to {USER} (authorizer: no rule allows"
        )),
        "{message}"
    );
    assert!(!message.contains("granted"), "{message}");
    let labels: Vec<_> = denied.checks.iter().map(|c| c.result_label()).collect();
    assert_eq!(labels, ["allowed", "denied"]);

    let warned = authorize(&authz, RbacCheck::Warn, &["granted", CID]).await;
    assert_eq!(warnings(&warned.verdict), [message.to_owned()]);
    assert!(
        warned.checks.iter().all(|c| c.cached),
        "second pod answered from the cache"
    );
    assert_eq!(fake.count(Endpoint::SubjectAccessReview), 2);
}

#[tokio::test]
async fn off_mode_makes_no_call() {
    let fake = FakeApiServer::start().await;
    let authz = authorizer(&fake, CacheConfig::default());
    let result = authorize(&authz, RbacCheck::Off, &[CID]).await;
    assert_eq!(result.verdict, Verdict::Allow);
    assert!(result.checks.is_empty());
    let missing = authorize(&authz, RbacCheck::Off, &[]).await;
    assert_eq!(missing.verdict, Verdict::Allow);
    assert_eq!(fake.count(Endpoint::SubjectAccessReview), 0);
}

#[tokio::test]
async fn no_client_id_is_400_without_a_call() {
    let fake = FakeApiServer::start().await;
    let authz = authorizer(&fake, CacheConfig::default());
    for mode in [RbacCheck::Deny, RbacCheck::Warn] {
        let result = authorize(&authz, mode, &[]).await;
        let (reason, message) = denial(&result.verdict);
        assert_eq!(reason, DenyReason::MissingClientId);
        assert!(
            message.contains("azure.workload.identity/client-id"),
            "{message}"
        );
    }
    assert_eq!(fake.count(Endpoint::SubjectAccessReview), 0);
}

/// Deny mode answers 500 naming the failure; warn mode admits with it as a warning; nothing cached.
async fn assert_failure_handling(fake: &FakeApiServer, authz: &CachedAuthorizer, expect: &str) {
    let started = std::time::Instant::now();
    let denied = authorize_pod(authz, RbacCheck::Deny, NS, SA, &ids(&[CID]), in_secs(1)).await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let (reason, message) = denial(&denied.verdict);
    assert_eq!(reason, DenyReason::RbacUnavailable);
    assert!(message.contains(expect), "{message}");
    assert!(
        message.contains("apps/web") && message.contains(CID),
        "{message}"
    );
    assert!(message.contains("--rbac-check=warn"), "{message}");
    assert_eq!(denied.checks[0].result_label(), "error");

    let warned = authorize_pod(authz, RbacCheck::Warn, NS, SA, &ids(&[CID]), in_secs(1)).await;
    let warned = warnings(&warned.verdict);
    assert_eq!(warned.len(), 1);
    assert!(warned[0].contains(expect), "{}", warned[0]);
    assert!(authz.is_empty(), "errors are not cached");
    let _ = fake;
}

#[tokio::test]
async fn an_api_server_error_is_500_or_a_warning() {
    let fake = FakeApiServer::start().await;
    fake.add_rule(grant(CID));
    fake.fail(Endpoint::SubjectAccessReview, 500);
    let authz = authorizer(&fake, CacheConfig::default());
    assert_failure_handling(&fake, &authz, "API server answered 500").await;
    assert_eq!(fake.count(Endpoint::SubjectAccessReview), 2);

    fake.clear_faults();
    assert_eq!(
        authorize(&authz, RbacCheck::Deny, &[CID]).await.verdict,
        Verdict::Allow
    );
}

#[tokio::test]
async fn an_unreachable_api_server_is_500_or_a_warning() {
    let fake = FakeApiServer::start().await;
    fake.set_outage(Outage::Refuse).await;
    let authz = authorizer(&fake, CacheConfig::default());
    assert_failure_handling(&fake, &authz, "Connection refused").await;
}

#[tokio::test]
async fn a_slow_api_server_is_500_within_the_request_deadline() {
    let fake = FakeApiServer::start().await;
    fake.add_rule(grant(CID));
    fake.delay_endpoint(Endpoint::SubjectAccessReview, Duration::from_secs(3));
    let authz = authorizer(&fake, CacheConfig::default());
    assert_failure_handling(&fake, &authz, "no answer from the API server within").await;
    // The two pods shared the one slow call: the first pod's deadline did not cancel it.
    assert_eq!(fake.count(Endpoint::SubjectAccessReview), 1);
}

#[tokio::test]
async fn a_new_grant_takes_effect_once_the_denied_entry_expires() {
    let fake = FakeApiServer::start().await;
    let authz = authorizer(
        &fake,
        CacheConfig {
            // Long enough that the check right after the denial is still a hit on a loaded machine.
            denied_ttl: Duration::from_secs(2),
            ..CacheConfig::default()
        },
    );
    assert_eq!(
        denial(&authorize(&authz, RbacCheck::Deny, &[CID]).await.verdict).0,
        DenyReason::RbacDenied
    );
    fake.add_rule(grant(CID));
    let again = authorize(&authz, RbacCheck::Deny, &[CID]).await;
    assert!(
        again.checks[0].cached,
        "denied answer still cached right after"
    );
    assert!(matches!(
        again.verdict,
        Verdict::Deny(Denial {
            reason: DenyReason::RbacDenied,
            ..
        })
    ));

    let allowed = eventually(Duration::from_secs(10), || async {
        authorize(&authz, RbacCheck::Deny, &[CID]).await.verdict == Verdict::Allow
    })
    .await;
    assert!(allowed, "grant never took effect");
    assert_eq!(fake.count(Endpoint::SubjectAccessReview), 2);
}

#[tokio::test]
async fn a_revoked_grant_is_honoured_until_the_allowed_entry_expires() {
    let fake = FakeApiServer::start().await;
    fake.add_rule(grant(CID));
    let authz = authorizer(
        &fake,
        CacheConfig {
            allowed_ttl: Duration::from_millis(200),
            ..CacheConfig::default()
        },
    );
    assert_eq!(
        authorize(&authz, RbacCheck::Deny, &[CID]).await.verdict,
        Verdict::Allow
    );
    fake.set_rules(Vec::new());
    let denied = eventually(Duration::from_secs(5), || async {
        matches!(
            authorize(&authz, RbacCheck::Deny, &[CID]).await.verdict,
            Verdict::Deny(Denial {
                reason: DenyReason::RbacDenied,
                ..
            })
        )
    })
    .await;
    assert!(denied, "revocation never took effect");
}

#[tokio::test]
async fn the_cache_stays_within_its_bound() {
    let fake = FakeApiServer::start().await;
    fake.add_rule(RbacRule::allow().user(USER));
    let authz = authorizer(
        &fake,
        CacheConfig {
            max_entries: 5,
            ..CacheConfig::default()
        },
    );
    for i in 0..12 {
        let id = format!("id-{i}");
        assert_eq!(
            authorize(&authz, RbacCheck::Deny, &[&id]).await.verdict,
            Verdict::Allow
        );
        assert!(authz.len() <= 5, "{} entries", authz.len());
    }
    assert_eq!(fake.count(Endpoint::SubjectAccessReview), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_one_thousand_pods_makes_one_call() {
    let fake = FakeApiServer::start().await;
    fake.add_rule(grant(CID));
    // Slow enough that every pod arrives while the one call is in flight.
    fake.delay_endpoint(Endpoint::SubjectAccessReview, Duration::from_millis(300));
    let authz = authorizer(&fake, CacheConfig::default());

    let pods = (0..1000).map(|_| {
        let authz = authz.clone();
        tokio::spawn(async move { authorize(&authz, RbacCheck::Deny, &[CID]).await })
    });
    let results = futures::future::join_all(pods).await;

    let calls = fake.count(Endpoint::SubjectAccessReview);
    println!("1000 concurrent identity-binding reviews for one service account: {calls} SubjectAccessReview call(s)");
    assert_eq!(calls, 1);
    let mut coalesced = 0;
    for result in results {
        let result = result.expect("task");
        assert_eq!(result.verdict, Verdict::Allow);
        coalesced += usize::from(result.checks[0].coalesced);
    }
    assert_eq!(coalesced, 999);
}

#[tokio::test]
async fn a_pod_is_checked_for_every_client_id_its_containers_present() {
    use azwi_webhook::mutate::service_account::ServiceAccountMeta;
    use azwi_webhook::mutate::settings::{ClusterCa, IdentityBinding, ProxySettings, Settings};
    use azwi_webhook::mutate::view::PodView;
    use azwi_webhook::mutate::{plan, Runtime};

    let settings = Settings {
        audience: "api://AzureADTokenExchange".into(),
        tenant_id: "tenant".into(),
        authority_host: "https://login.microsoftonline.com/".into(),
        identity_binding: Some(IdentityBinding {
            switch_key: "azure.workload.identity/use-identity-binding".into(),
            audience: "api://AKSIdentityBinding".into(),
            token_proxy: "https://proxy.example".into(),
            sni_name: "".into(),
            ca: ClusterCa::None,
        }),
        proxy: ProxySettings::default(),
    };
    let sa = ServiceAccountMeta {
        namespace: NS.into(),
        name: SA.into(),
        annotations: [(
            "azure.workload.identity/client-id".to_owned(),
            CID.to_owned(),
        )]
        .into(),
    };
    let raw = json!({
        "metadata": {"name": "p", "labels": {"azure.workload.identity/use-identity-binding": "true"}},
        "spec": {"serviceAccountName": SA, "containers": [
            {"name": "app"},
            {"name": "other", "env": [{"name": "AZURE_CLIENT_ID", "value": "other-id"}]},
            {"name": "secret", "env": [{"name": "AZURE_CLIENT_ID", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}
        ]}
    })
    .to_string();
    let pod = PodView::from_json(&raw).expect("pod");
    let plan = plan(&settings, Runtime::default(), &pod, &sa).expect("valid pod");
    assert!(plan.identity.identity_binding);
    let ids = plan.client_ids;
    assert_eq!(ids.ids, [CID, "other-id"]);
    assert_eq!(ids.unresolvable, ["secret"]);

    let fake = FakeApiServer::start().await;
    fake.add_rule(grant(CID));
    let authz = authorizer(&fake, CacheConfig::default());
    let result = authorize_pod(&authz, RbacCheck::Deny, NS, SA, &ids, in_secs(8)).await;
    let (reason, message) = denial(&result.verdict);
    assert_eq!(reason, DenyReason::RbacDenied);
    assert!(message.contains("managed identity other-id"), "{message}");
    let resources: Vec<_> = fake
        .reviews()
        .iter()
        .map(|r| r["spec"]["resourceAttributes"]["resource"].clone())
        .collect();
    assert_eq!(resources.len(), 2);
    assert!(resources.contains(&json!(CID)) && resources.contains(&json!("other-id")));

    fake.add_rule(grant("other-id"));
    let again = authorize_pod(&authz, RbacCheck::Deny, NS, SA, &ids, in_secs(8)).await;
    // other-id's denial is still cached (10 s): the pod stays refused until it expires.
    assert!(matches!(
        again.verdict,
        Verdict::Deny(Denial {
            reason: DenyReason::RbacDenied,
            ..
        })
    ));
}
