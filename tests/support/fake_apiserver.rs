//! An in-process fake Kubernetes API server for tests, so the real kube client can be exercised without a
//! cluster (none is available here). Self-contained: include it from any test binary with
//! `#[path = "support/fake_apiserver.rs"] mod fake_apiserver;`.
//!
//! Serves, over TLS (a CA generated per server) or plain HTTP on `127.0.0.1:0`:
//! - `GET /version`
//! - discovery: `GET /api`, `/apis`, `/api/v1` and `/apis/{group}/{version}` for the resources below (plain
//!   JSON documents; a client asking for aggregated discovery or protobuf that also accepts JSON gets them, as
//!   from an API server that does not aggregate), so REST mappers such as client-go's can resolve them
//! - `GET /api/v1/namespaces/{ns}/serviceaccounts/{name}` (full object, or `PartialObjectMetadata` when the
//!   `Accept` header asks for `as=PartialObjectMetadata`, as kube's `get_metadata` and metadata `Api`s do)
//! - `GET /api/v1/serviceaccounts` and `/api/v1/namespaces/{ns}/serviceaccounts`: list (`limit`/`continue`,
//!   `labelSelector` with `k=v` terms) and `?watch=true` (ADDED/MODIFIED/DELETED, BOOKMARK when
//!   `allowWatchBookmarks`, `resourceVersion`, `timeoutSeconds`, `sendInitialEvents`, 410 after
//!   [`FakeApiServer::compact_watch_history`])
//! - `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`, answered from [`RbacRule`]s
//! - Secrets (`/api/v1/namespaces/{ns}/secrets[/{name}]`), MutatingWebhookConfigurations
//!   (`/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/{name}`) and Leases
//!   (`/apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}]`): get, create, update, patch (JSON,
//!   merge, strategic), with resourceVersion conflicts (409); see `fake_objects.rs`. Secrets and
//!   MutatingWebhookConfigurations can also be listed and watched (`?watch=true`, from a `resourceVersion`,
//!   `fieldSelector=metadata.name=NAME`, `timeoutSeconds`, full objects or `PartialObjectMetadata`)
//!
//! Plus switches for outages, delays and injected error statuses, and per-endpoint request counters.
#![allow(dead_code)]

#[path = "fake_objects.rs"]
mod objects;

pub use objects::Kind;
use objects::{ObjectBroadcast, ObjectStore, Selection, Verb};

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

/// The endpoints the fake distinguishes, for counters and fault targeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Version,
    Discovery,
    GetServiceAccount,
    ListServiceAccounts,
    WatchServiceAccounts,
    SubjectAccessReview,
    GetSecret,
    CreateSecret,
    UpdateSecret,
    PatchSecret,
    ListSecrets,
    WatchSecrets,
    GetWebhookConfig,
    UpdateWebhookConfig,
    PatchWebhookConfig,
    ListWebhookConfigs,
    WatchWebhookConfigs,
    GetLease,
    CreateLease,
    UpdateLease,
    PatchLease,
    /// Anything else (answered 404).
    Other,
}

/// How the server is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The listening socket is closed and open connections are cut: clients get "connection refused".
    Refuse,
    /// Every request is answered `503 Service Unavailable`.
    Unavailable,
}

/// One request as received, for assertions.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub endpoint: Endpoint,
    pub method: String,
    pub path: String,
    pub query: String,
    pub accept: Option<String>,
    pub user_agent: Option<String>,
}

/// A service account as the test describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeServiceAccount {
    pub namespace: String,
    pub name: String,
    pub annotations: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

impl FakeServiceAccount {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ..Self::default()
        }
    }

    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// One authorization rule; `None` fields match anything. Deny rules win over allow rules; with no
/// matching rule the review is not allowed (like RBAC, which has no opinion).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RbacRule {
    pub allow: bool,
    pub user: Option<String>,
    pub group: Option<String>,
    pub verb: Option<String>,
    pub api_group: Option<String>,
    pub resource: Option<String>,
    pub subresource: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

impl RbacRule {
    pub fn allow() -> Self {
        Self {
            allow: true,
            ..Self::default()
        }
    }

    pub fn deny() -> Self {
        Self::default()
    }

    pub fn user(mut self, user: &str) -> Self {
        self.user = Some(user.to_owned());
        self
    }

    pub fn group(mut self, group: &str) -> Self {
        self.group = Some(group.to_owned());
        self
    }

    pub fn verb(mut self, verb: &str) -> Self {
        self.verb = Some(verb.to_owned());
        self
    }

    pub fn api_group(mut self, api_group: &str) -> Self {
        self.api_group = Some(api_group.to_owned());
        self
    }

    pub fn resource(mut self, resource: &str) -> Self {
        self.resource = Some(resource.to_owned());
        self
    }

    pub fn subresource(mut self, subresource: &str) -> Self {
        self.subresource = Some(subresource.to_owned());
        self
    }

    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_owned());
        self
    }

    fn matches(&self, review: &ReviewAttributes) -> bool {
        fn field(rule: &Option<String>, value: &str) -> bool {
            rule.as_deref()
                .is_none_or(|want| want == "*" || want == value)
        }
        let group_ok = self
            .group
            .as_deref()
            .is_none_or(|want| want == "*" || review.groups.iter().any(|g| g == want));
        field(&self.user, &review.user)
            && group_ok
            && field(&self.verb, &review.verb)
            && field(&self.api_group, &review.api_group)
            && field(&self.resource, &review.resource)
            && field(&self.subresource, &review.subresource)
            && field(&self.name, &review.name)
            && field(&self.namespace, &review.namespace)
    }
}

/// The fields of a SubjectAccessReview the rules look at.
#[derive(Debug, Clone, Default)]
struct ReviewAttributes {
    user: String,
    groups: Vec<String>,
    verb: String,
    api_group: String,
    resource: String,
    subresource: String,
    name: String,
    namespace: String,
}

#[derive(Debug, Clone)]
enum FaultAction {
    Delay(Duration),
    Status(u16),
}

#[derive(Debug, Clone)]
struct Fault {
    endpoint: Option<Endpoint>,
    action: FaultAction,
    remaining: Option<u32>,
}

#[derive(Debug, Clone)]
struct StoredServiceAccount {
    sa: FakeServiceAccount,
    uid: String,
    resource_version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

#[derive(Debug, Clone)]
struct LoggedEvent {
    kind: EventType,
    object: StoredServiceAccount,
}

#[derive(Debug, Clone)]
enum Broadcast {
    Event(LoggedEvent),
    CloseWatches,
}

#[derive(Default)]
struct Store {
    resource_version: u64,
    next_uid: u64,
    objects: BTreeMap<(String, String), StoredServiceAccount>,
    log: Vec<LoggedEvent>,
    /// Watches starting at or below this version get 410 Gone.
    compacted_at: u64,
}

struct Controls {
    git_version: String,
    rules: Vec<RbacRule>,
    faults: Vec<Fault>,
    outage: Option<Outage>,
    bookmark_interval: Duration,
}

struct Inner {
    store: Mutex<Store>,
    events: broadcast::Sender<Broadcast>,
    controls: Mutex<Controls>,
    counters: Mutex<HashMap<Endpoint, u64>>,
    requests: Mutex<Vec<RecordedRequest>>,
    reviews: Mutex<Vec<Value>>,
    objects: Mutex<ObjectStore>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A running fake API server; stops when dropped.
pub struct FakeApiServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    ca_der: Option<Vec<u8>>,
    ca_pem: Option<String>,
    accept_loop: Mutex<Option<AcceptLoop>>,
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        if let Some(accept_loop) = lock(&self.accept_loop).take() {
            accept_loop.task.abort();
        }
    }
}

/// The task accepting connections, and the signal that stops it.
struct AcceptLoop {
    task: JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl FakeApiServer {
    /// Starts a TLS server with a freshly generated CA; use [`Self::config`] or [`Self::client`].
    pub async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (server_config, ca_der, ca_pem) = tls_material();
        Self::start_with(Some(Arc::new(server_config)), Some(ca_der), Some(ca_pem)).await
    }

    /// [`Self::start`] holding the service account most tests admit pods for: `ns/workload` with
    /// client ID `client-1`.
    pub async fn start_with_workload() -> Self {
        let fake = Self::start().await;
        fake.add_service_account(
            "ns",
            "workload",
            &[("azure.workload.identity/client-id", "client-1")],
        );
        fake
    }

    /// Starts a plain-HTTP server.
    pub async fn start_plain() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self::start_with(None, None, None).await
    }

    async fn start_with(
        tls: Option<Arc<rustls::ServerConfig>>,
        ca_der: Option<Vec<u8>>,
        ca_pem: Option<String>,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            store: Mutex::new(Store::default()),
            events,
            controls: Mutex::new(Controls {
                git_version: "v1.34.1".to_owned(),
                rules: Vec::new(),
                faults: Vec::new(),
                outage: None,
                bookmark_interval: Duration::from_secs(1),
            }),
            counters: Mutex::new(HashMap::new()),
            requests: Mutex::new(Vec::new()),
            reviews: Mutex::new(Vec::new()),
            objects: Mutex::new(ObjectStore::default()),
        });
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let server = Self {
            inner,
            addr,
            tls,
            ca_der,
            ca_pem,
            accept_loop: Mutex::new(None),
        };
        server.spawn_accept_loop(listener);
        server
    }

    fn spawn_accept_loop(&self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(
            listener,
            self.tls.clone(),
            self.inner.clone(),
            stopped,
        ));
        if let Some(old) = lock(&self.accept_loop).replace(AcceptLoop { task, stop }) {
            old.task.abort();
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:port` (or `http://` for [`Self::start_plain`]).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The CA that signed the serving certificate (DER), if TLS.
    pub fn ca_der(&self) -> Option<&[u8]> {
        self.ca_der.as_deref()
    }

    /// The CA that signed the serving certificate (PEM), if TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A kube configuration pointing at this server with its CA trusted (kube defaults otherwise).
    pub fn config(&self) -> kube::Config {
        let mut config = kube::Config::new(self.url().parse().expect("server url"));
        config.root_cert = self.ca_der.clone().map(|der| vec![der]);
        config
    }

    /// A plain kube client for this server, with kube's retries off so injected faults are seen as is.
    pub fn client(&self) -> kube::Client {
        let mut config = self.config();
        config.default_retry = false;
        kube::Client::try_from(config).expect("kube client for fake API server")
    }

    /// A kubeconfig file's text pointing at this TLS server with its CA trusted, for a child
    /// process (e.g. the real binary) that finds the API server through `KUBECONFIG`.
    pub fn kubeconfig(&self) -> String {
        use base64::Engine;
        let ca_pem = self.ca_pem().expect("kubeconfig needs the TLS fake");
        let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    \
             server: {}\n    certificate-authority-data: {ca}\ncontexts:\n- name: fake\n  context:\n    \
             cluster: fake\n    user: fake\nusers:\n- name: fake\n  user:\n    token: test-token\n",
            self.url()
        )
    }

    // ---- service accounts ----

    /// Creates or replaces a service account; returns its new resourceVersion.
    pub fn apply(&self, sa: FakeServiceAccount) -> u64 {
        let mut store = lock(&self.inner.store);
        store.resource_version += 1;
        let resource_version = store.resource_version;
        let key = (sa.namespace.clone(), sa.name.clone());
        let (kind, uid) = match store.objects.get(&key) {
            Some(existing) => (EventType::Modified, existing.uid.clone()),
            None => {
                store.next_uid += 1;
                (
                    EventType::Added,
                    format!("00000000-0000-0000-0000-{:012}", store.next_uid),
                )
            }
        };
        let object = StoredServiceAccount {
            sa,
            uid,
            resource_version,
        };
        store.objects.insert(key, object.clone());
        self.publish(&mut store, kind, object);
        resource_version
    }

    /// Adds (or replaces) `namespace/name` with the given annotations.
    pub fn add_service_account(
        &self,
        namespace: &str,
        name: &str,
        annotations: &[(&str, &str)],
    ) -> u64 {
        let sa = annotations
            .iter()
            .fold(FakeServiceAccount::new(namespace, name), |sa, (k, v)| {
                sa.annotation(k, v)
            });
        self.apply(sa)
    }

    /// Replaces the annotations of an existing service account; `None` if it does not exist.
    pub fn set_annotations(
        &self,
        namespace: &str,
        name: &str,
        annotations: &[(&str, &str)],
    ) -> Option<u64> {
        let mut sa = self.service_account(namespace, name)?;
        sa.annotations = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Some(self.apply(sa))
    }

    /// Deletes a service account; returns whether it existed.
    pub fn delete_service_account(&self, namespace: &str, name: &str) -> bool {
        let mut store = lock(&self.inner.store);
        let Some(mut object) = store
            .objects
            .remove(&(namespace.to_owned(), name.to_owned()))
        else {
            return false;
        };
        store.resource_version += 1;
        object.resource_version = store.resource_version;
        self.publish(&mut store, EventType::Deleted, object);
        true
    }

    pub fn service_account(&self, namespace: &str, name: &str) -> Option<FakeServiceAccount> {
        lock(&self.inner.store)
            .objects
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|stored| stored.sa.clone())
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        lock(&self.inner.store).resource_version
    }

    fn publish(&self, store: &mut Store, kind: EventType, object: StoredServiceAccount) {
        let event = LoggedEvent { kind, object };
        store.log.push(event.clone());
        // Sent under the store lock so watches see events in resourceVersion order; no receivers is fine.
        let _ = self.inner.events.send(Broadcast::Event(event));
    }

    /// Forgets the event history: watches resuming from an older resourceVersion now get 410 Gone.
    pub fn compact_watch_history(&self) {
        let mut store = lock(&self.inner.store);
        store.compacted_at = store.resource_version;
        store.log.clear();
    }

    /// Ends every open watch stream (clients re-watch from their last resourceVersion).
    pub fn close_watches(&self) {
        let _ = self.inner.events.send(Broadcast::CloseWatches);
        lock(&self.inner.objects).close_watches();
    }

    // ---- Secrets, webhook configurations, Leases ----

    /// The stored object (`namespace` empty for cluster-scoped kinds), as JSON.
    pub fn object(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        lock(&self.inner.objects).get(kind, namespace, name)
    }

    /// Creates or replaces an object unconditionally, as another client would; returns its resourceVersion.
    pub fn put_object(&self, kind: Kind, namespace: &str, object: Value) -> u64 {
        lock(&self.inner.objects).put(kind, namespace, object)
    }

    pub fn delete_object(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        lock(&self.inner.objects).delete(kind, namespace, name)
    }

    /// A Secret's `data`, base64-decoded; `None` if the Secret does not exist.
    pub fn secret_data(&self, namespace: &str, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        use base64::Engine;
        let secret = self.object(Kind::Secret, namespace, name)?;
        let data = secret["data"].as_object().cloned().unwrap_or_default();
        Some(
            data.into_iter()
                .map(|(key, value)| {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(value.as_str().unwrap_or_default())
                        .unwrap_or_default();
                    (key, decoded)
                })
                .collect(),
        )
    }

    /// Adds a MutatingWebhookConfiguration with one entry per name, no `caBundle` set.
    pub fn add_webhook_configuration(&self, name: &str, webhooks: &[&str]) -> u64 {
        let entries: Vec<Value> = webhooks
            .iter()
            .map(|webhook| {
                json!({
                    "name": webhook,
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "clientConfig": {"service": {"name": "svc", "namespace": "ns", "path": "/mutate-v1-pod"}},
                })
            })
            .collect();
        self.put_object(
            Kind::MutatingWebhookConfiguration,
            "",
            json!({"metadata": {"name": name}, "webhooks": entries}),
        )
    }

    /// Each entry's `caBundle`, base64-decoded (`None` when unset); empty if the configuration is missing.
    pub fn ca_bundles(&self, name: &str) -> Vec<Option<Vec<u8>>> {
        use base64::Engine;
        let Some(config) = self.object(Kind::MutatingWebhookConfiguration, "", name) else {
            return Vec::new();
        };
        config["webhooks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|webhook| {
                webhook["clientConfig"]["caBundle"].as_str().map(|b64| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .unwrap_or_default()
                })
            })
            .collect()
    }

    /// Overwrites every entry's `caBundle` (drift made by someone else); returns the new resourceVersion.
    pub fn set_ca_bundles(&self, name: &str, bundle: &[u8]) -> Option<u64> {
        use base64::Engine;
        let mut config = self.object(Kind::MutatingWebhookConfiguration, "", name)?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(bundle);
        for webhook in config["webhooks"].as_array_mut()? {
            webhook["clientConfig"]["caBundle"] = json!(encoded);
        }
        Some(self.put_object(Kind::MutatingWebhookConfiguration, "", config))
    }

    // ---- switches ----

    pub fn set_git_version(&self, git_version: &str) {
        lock(&self.inner.controls).git_version = git_version.to_owned();
    }

    pub fn set_bookmark_interval(&self, interval: Duration) {
        lock(&self.inner.controls).bookmark_interval = interval;
    }

    pub fn add_rule(&self, rule: RbacRule) {
        lock(&self.inner.controls).rules.push(rule);
    }

    pub fn set_rules(&self, rules: Vec<RbacRule>) {
        lock(&self.inner.controls).rules = rules;
    }

    /// The SubjectAccessReview bodies received so far.
    pub fn reviews(&self) -> Vec<Value> {
        lock(&self.inner.reviews).clone()
    }

    /// Delays every request by `delay` (added to endpoint-specific delays).
    pub fn delay(&self, delay: Duration) {
        self.add_fault(None, FaultAction::Delay(delay), None);
    }

    pub fn delay_endpoint(&self, endpoint: Endpoint, delay: Duration) {
        self.add_fault(Some(endpoint), FaultAction::Delay(delay), None);
    }

    /// Answers every request to `endpoint` with `status` (a Kubernetes `Status` body) until cleared.
    pub fn fail(&self, endpoint: Endpoint, status: u16) {
        self.add_fault(Some(endpoint), FaultAction::Status(status), None);
    }

    /// Answers the next `times` requests to `endpoint` with `status`.
    pub fn fail_times(&self, endpoint: Endpoint, status: u16, times: u32) {
        self.add_fault(Some(endpoint), FaultAction::Status(status), Some(times));
    }

    pub fn clear_faults(&self) {
        lock(&self.inner.controls).faults.clear();
    }

    fn add_fault(&self, endpoint: Option<Endpoint>, action: FaultAction, remaining: Option<u32>) {
        lock(&self.inner.controls).faults.push(Fault {
            endpoint,
            action,
            remaining,
        });
    }

    /// Starts an outage. `Refuse` closes the listener and cuts every open connection before returning.
    pub async fn set_outage(&self, outage: Outage) {
        lock(&self.inner.controls).outage = Some(outage);
        if outage == Outage::Refuse {
            let accept_loop = lock(&self.accept_loop).take();
            if let Some(AcceptLoop { task, stop }) = accept_loop {
                let _ = stop.send(());
                let _ = task.await;
            }
        }
    }

    /// Ends an outage; after `Refuse` the same port is listened on again before this returns.
    pub async fn end_outage(&self) {
        lock(&self.inner.controls).outage = None;
        if lock(&self.accept_loop).is_none() {
            let listener = TcpListener::bind(self.addr)
                .await
                .expect("re-bind fake API server port");
            self.spawn_accept_loop(listener);
        }
    }

    // ---- counters ----

    pub fn count(&self, endpoint: Endpoint) -> u64 {
        lock(&self.inner.counters)
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.inner.requests).clone()
    }

    pub fn reset_counters(&self) {
        lock(&self.inner.counters).clear();
        lock(&self.inner.requests).clear();
    }
}

/// A CA and a serving certificate for 127.0.0.1/localhost; returns the server config and the CA.
fn tls_material() -> (rustls::ServerConfig, Vec<u8>, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType,
    };

    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fake-apiserver-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");

    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_owned()]).expect("leaf params");
    leaf_params
        .subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "fake-apiserver");
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca, &ca_key)
        .expect("leaf certificate");

    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
    .expect("server certificate");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    (config, ca.der().to_vec(), ca.pem())
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    inner: Arc<Inner>,
    mut stop: oneshot::Receiver<()>,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => {
                // Cut every open connection and wait until they are gone, then drop the listener.
                connections.shutdown().await;
                return;
            }
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let inner = inner.clone();
                let acceptor = acceptor.clone();
                connections.spawn(async move {
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(stream).await {
                                serve_connection(TokioIo::new(tls), inner).await;
                            }
                        }
                        None => serve_connection(TokioIo::new(stream), inner).await,
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve_connection<I>(io: I, inner: Arc<Inner>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let inner = inner.clone();
        async move { Ok::<_, Infallible>(handle(inner, request).await) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, service)
        .await;
}

fn classify(
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
) -> (Endpoint, Option<String>, Option<String>) {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let watching = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
    let list_or_watch = if watching {
        Endpoint::WatchServiceAccounts
    } else {
        Endpoint::ListServiceAccounts
    };
    match (method, segments.as_slice()) {
        (&Method::GET, ["version"]) => (Endpoint::Version, None, None),
        (&Method::GET, ["api"] | ["apis"] | ["api", _] | ["apis", _, _]) => {
            (Endpoint::Discovery, None, None)
        }
        (&Method::GET, ["api", "v1", "serviceaccounts"]) => (list_or_watch, None, None),
        (&Method::GET, ["api", "v1", "namespaces", ns, "serviceaccounts"]) => {
            (list_or_watch, Some((*ns).to_owned()), None)
        }
        (&Method::GET, ["api", "v1", "namespaces", ns, "serviceaccounts", name]) => (
            Endpoint::GetServiceAccount,
            Some((*ns).to_owned()),
            Some((*name).to_owned()),
        ),
        (&Method::POST, ["apis", "authorization.k8s.io", "v1", "subjectaccessreviews"]) => {
            (Endpoint::SubjectAccessReview, None, None)
        }
        (&Method::POST, ["api", "v1", "namespaces", ns, "secrets"]) => {
            (Endpoint::CreateSecret, Some((*ns).to_owned()), None)
        }
        (&Method::GET, ["api", "v1", "namespaces", ns, "secrets"]) => {
            let endpoint = if watching {
                Endpoint::WatchSecrets
            } else {
                Endpoint::ListSecrets
            };
            (endpoint, Some((*ns).to_owned()), None)
        }
        (
            &Method::GET,
            ["apis", "admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations"],
        ) => {
            let endpoint = if watching {
                Endpoint::WatchWebhookConfigs
            } else {
                Endpoint::ListWebhookConfigs
            };
            (endpoint, None, None)
        }
        (method, ["api", "v1", "namespaces", ns, "secrets", name]) => {
            let endpoint = match *method {
                Method::GET => Endpoint::GetSecret,
                Method::PUT => Endpoint::UpdateSecret,
                Method::PATCH => Endpoint::PatchSecret,
                _ => Endpoint::Other,
            };
            (endpoint, Some((*ns).to_owned()), Some((*name).to_owned()))
        }
        (
            method,
            ["apis", "admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", name],
        ) => {
            let endpoint = match *method {
                Method::GET => Endpoint::GetWebhookConfig,
                Method::PUT => Endpoint::UpdateWebhookConfig,
                Method::PATCH => Endpoint::PatchWebhookConfig,
                _ => Endpoint::Other,
            };
            (endpoint, None, Some((*name).to_owned()))
        }
        (&Method::POST, ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases"]) => {
            (Endpoint::CreateLease, Some((*ns).to_owned()), None)
        }
        (method, ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases", name]) => {
            let endpoint = match *method {
                Method::GET => Endpoint::GetLease,
                Method::PUT => Endpoint::UpdateLease,
                Method::PATCH => Endpoint::PatchLease,
                _ => Endpoint::Other,
            };
            (endpoint, Some((*ns).to_owned()), Some((*name).to_owned()))
        }
        _ => (Endpoint::Other, None, None),
    }
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn handle(inner: Arc<Inner>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let raw_query = request.uri().query().unwrap_or("").to_owned();
    let query = parse_query(&raw_query);
    let (endpoint, namespace, name) = classify(request.method(), &path, &query);
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let accept = header(ACCEPT);
    lock(&inner.requests).push(RecordedRequest {
        endpoint,
        method: request.method().to_string(),
        path: path.clone(),
        query: raw_query,
        accept: accept.clone(),
        user_agent: header(USER_AGENT),
    });
    *lock(&inner.counters).entry(endpoint).or_default() += 1;

    let (delay, injected) = take_faults(&inner, endpoint);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(code) = injected {
        return status_response(code, "InternalError", "injected failure");
    }
    let metadata_form = accept
        .as_deref()
        .is_some_and(|a| a.contains("as=PartialObjectMetadata"));

    match endpoint {
        Endpoint::Version => version(&inner),
        Endpoint::Discovery => discovery(&path),
        Endpoint::GetServiceAccount => get_service_account(
            &inner,
            namespace.as_deref().unwrap_or_default(),
            name.as_deref().unwrap_or_default(),
            metadata_form,
        ),
        Endpoint::ListServiceAccounts => {
            list_service_accounts(&inner, namespace.as_deref(), &query, metadata_form)
        }
        Endpoint::WatchServiceAccounts => {
            watch_service_accounts(&inner, namespace, &query, metadata_form)
        }
        Endpoint::SubjectAccessReview => subject_access_review(&inner, request).await,
        Endpoint::ListSecrets | Endpoint::WatchSecrets => {
            let watch = endpoint == Endpoint::WatchSecrets;
            list_or_watch_objects(
                &inner,
                Kind::Secret,
                namespace,
                &query,
                metadata_form,
                watch,
            )
        }
        Endpoint::ListWebhookConfigs | Endpoint::WatchWebhookConfigs => {
            let watch = endpoint == Endpoint::WatchWebhookConfigs;
            let kind = Kind::MutatingWebhookConfiguration;
            list_or_watch_objects(&inner, kind, None, &query, metadata_form, watch)
        }
        Endpoint::GetSecret
        | Endpoint::CreateSecret
        | Endpoint::UpdateSecret
        | Endpoint::PatchSecret
        | Endpoint::GetWebhookConfig
        | Endpoint::UpdateWebhookConfig
        | Endpoint::PatchWebhookConfig
        | Endpoint::GetLease
        | Endpoint::CreateLease
        | Endpoint::UpdateLease
        | Endpoint::PatchLease => {
            let (kind, verb) = object_route(endpoint);
            object_request(&inner, kind, verb, namespace, name, request).await
        }
        Endpoint::Other => status_response(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({path})"),
        ),
    }
}

fn object_route(endpoint: Endpoint) -> (Kind, Verb) {
    match endpoint {
        Endpoint::GetSecret => (Kind::Secret, Verb::Get),
        Endpoint::CreateSecret => (Kind::Secret, Verb::Create),
        Endpoint::UpdateSecret => (Kind::Secret, Verb::Update),
        Endpoint::PatchSecret => (Kind::Secret, Verb::Patch),
        Endpoint::GetWebhookConfig => (Kind::MutatingWebhookConfiguration, Verb::Get),
        Endpoint::UpdateWebhookConfig => (Kind::MutatingWebhookConfiguration, Verb::Update),
        Endpoint::PatchWebhookConfig => (Kind::MutatingWebhookConfiguration, Verb::Patch),
        Endpoint::GetLease => (Kind::Lease, Verb::Get),
        Endpoint::CreateLease => (Kind::Lease, Verb::Create),
        Endpoint::UpdateLease => (Kind::Lease, Verb::Update),
        _ => (Kind::Lease, Verb::Patch),
    }
}

async fn object_request(
    inner: &Inner,
    kind: Kind,
    verb: Verb,
    namespace: Option<String>,
    name: Option<String>,
    request: Request<Incoming>,
) -> Response<Body> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match axum::body::to_bytes(Body::new(request.into_body()), 4 << 20).await {
        Ok(body) => body,
        Err(_) => return status_response(400, "BadRequest", "unreadable body"),
    };
    let (code, value) = lock(&inner.objects).handle(
        kind,
        verb,
        namespace.as_deref().unwrap_or_default(),
        name.as_deref().unwrap_or_default(),
        content_type.as_deref(),
        &body,
    );
    json_response(code, &value)
}

/// Applies the outage and fault switches: total delay and an optional status to answer with.
fn take_faults(inner: &Inner, endpoint: Endpoint) -> (Duration, Option<u16>) {
    let mut controls = lock(&inner.controls);
    if controls.outage == Some(Outage::Unavailable) {
        return (Duration::ZERO, Some(503));
    }
    let mut delay = Duration::ZERO;
    let mut status = None;
    for fault in controls.faults.iter_mut() {
        if fault.endpoint.is_some_and(|e| e != endpoint) || fault.remaining == Some(0) {
            continue;
        }
        match fault.action {
            FaultAction::Delay(extra) => delay += extra,
            FaultAction::Status(code) if status.is_none() => status = Some(code),
            FaultAction::Status(_) => continue,
        }
        if let Some(remaining) = fault.remaining.as_mut() {
            *remaining -= 1;
        }
    }
    (delay, status)
}

fn json_response(code: u16, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).expect("serialise JSON");
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from(bytes))
        .expect("response")
}

fn status_object(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn status_response(code: u16, reason: &str, message: &str) -> Response<Body> {
    json_response(code, &status_object(code, reason, message))
}

fn version(inner: &Inner) -> Response<Body> {
    let git_version = lock(&inner.controls).git_version.clone();
    let mut parts = git_version.trim_start_matches('v').split('.');
    let major = parts.next().unwrap_or("1").to_owned();
    let minor = parts.next().unwrap_or("0").to_owned();
    json_response(
        200,
        &json!({
            "major": major,
            "minor": minor,
            "gitVersion": git_version,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }),
    )
}

/// One resource the fake serves, as discovery lists it.
struct DiscoveredResource {
    name: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    verbs: &'static [&'static str],
}

const READ_WRITE: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// The group versions the fake serves and their resources (`""` is the core group), for discovery.
const DISCOVERY: &[(&str, &str, &[DiscoveredResource])] = &[
    (
        "",
        "v1",
        &[
            DiscoveredResource {
                name: "secrets",
                singular: "secret",
                kind: "Secret",
                namespaced: true,
                verbs: READ_WRITE,
            },
            DiscoveredResource {
                name: "serviceaccounts",
                singular: "serviceaccount",
                kind: "ServiceAccount",
                namespaced: true,
                verbs: READ_WRITE,
            },
        ],
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        &[DiscoveredResource {
            name: "mutatingwebhookconfigurations",
            singular: "mutatingwebhookconfiguration",
            kind: "MutatingWebhookConfiguration",
            namespaced: false,
            verbs: READ_WRITE,
        }],
    ),
    (
        "authorization.k8s.io",
        "v1",
        &[DiscoveredResource {
            name: "subjectaccessreviews",
            singular: "subjectaccessreview",
            kind: "SubjectAccessReview",
            namespaced: false,
            verbs: &["create"],
        }],
    ),
    (
        "coordination.k8s.io",
        "v1",
        &[DiscoveredResource {
            name: "leases",
            singular: "lease",
            kind: "Lease",
            namespaced: true,
            verbs: READ_WRITE,
        }],
    ),
];

/// `/api` (APIVersions), `/apis` (APIGroupList), `/api/v1` and `/apis/{group}/{version}`
/// (APIResourceList); 404 for a group version the fake does not serve.
fn discovery(path: &str) -> Response<Body> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version) = match segments.as_slice() {
        ["api"] => return json_response(200, &core_api_versions()),
        ["apis"] => return json_response(200, &api_group_list()),
        ["api", version] => ("", *version),
        ["apis", group, version] => (*group, *version),
        _ => ("", ""),
    };
    match DISCOVERY
        .iter()
        .find(|(g, v, _)| *g == group && *v == version)
    {
        Some((_, _, resources)) => {
            json_response(200, &api_resource_list(group, version, resources))
        }
        None => status_response(
            404,
            "NotFound",
            &format!("the server could not find the requested resource ({path})"),
        ),
    }
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

fn core_api_versions() -> Value {
    let versions: Vec<&str> = DISCOVERY
        .iter()
        .filter(|(group, _, _)| group.is_empty())
        .map(|(_, version, _)| *version)
        .collect();
    json!({"kind": "APIVersions", "versions": versions, "serverAddressByClientCIDRs": []})
}

fn api_group_list() -> Value {
    let groups: Vec<Value> = DISCOVERY
        .iter()
        .filter(|(group, _, _)| !group.is_empty())
        .map(|(group, version, _)| {
            let version =
                json!({"groupVersion": group_version(group, version), "version": version});
            json!({"name": group, "versions": [version.clone()], "preferredVersion": version})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn api_resource_list(group: &str, version: &str, resources: &[DiscoveredResource]) -> Value {
    let resources: Vec<Value> = resources
        .iter()
        .map(|resource| {
            json!({
                "name": resource.name,
                "singularName": resource.singular,
                "namespaced": resource.namespaced,
                "kind": resource.kind,
                "verbs": resource.verbs,
            })
        })
        .collect();
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version(group, version),
        "resources": resources,
    })
}

fn object_metadata(stored: &StoredServiceAccount) -> Value {
    let mut metadata = json!({
        "name": stored.sa.name,
        "namespace": stored.sa.namespace,
        "uid": stored.uid,
        "resourceVersion": stored.resource_version.to_string(),
        "creationTimestamp": "2025-01-01T00:00:00Z",
        // Real API servers send managedFields in metadata responses too; consumers must drop them.
        "managedFields": [{
            "manager": "kubectl",
            "operation": "Apply",
            "apiVersion": "v1",
            "time": "2025-01-01T00:00:00Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:annotations": {}}},
        }],
    });
    if !stored.sa.annotations.is_empty() {
        metadata["annotations"] = json!(stored.sa.annotations);
    }
    if !stored.sa.labels.is_empty() {
        metadata["labels"] = json!(stored.sa.labels);
    }
    metadata
}

fn object_json(stored: &StoredServiceAccount, metadata_form: bool) -> Value {
    if metadata_form {
        json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": object_metadata(stored),
        })
    } else {
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": object_metadata(stored),
        })
    }
}

fn get_service_account(
    inner: &Inner,
    namespace: &str,
    name: &str,
    metadata_form: bool,
) -> Response<Body> {
    let store = lock(&inner.store);
    match store.objects.get(&(namespace.to_owned(), name.to_owned())) {
        Some(stored) => json_response(200, &object_json(stored, metadata_form)),
        None => {
            let mut status = status_object(
                404,
                "NotFound",
                &format!("serviceaccounts \"{name}\" not found"),
            );
            status["details"] = json!({"name": name, "kind": "serviceaccounts"});
            json_response(404, &status)
        }
    }
}

/// `k=v` / `k==v` / `k!=v` terms, comma separated; other selector syntax matches everything.
fn label_selector_matches(selector: Option<&String>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    selector
        .split(',')
        .filter(|t| !t.trim().is_empty())
        .all(|term| {
            if let Some((key, value)) = term.split_once("!=") {
                labels.get(key.trim()).map(String::as_str) != Some(value.trim())
            } else if let Some((key, value)) = term.split_once('=') {
                let value = value.trim_start_matches('=');
                labels.get(key.trim()).map(String::as_str) == Some(value.trim())
            } else {
                true
            }
        })
}

fn selected<'s>(
    store: &'s Store,
    namespace: Option<&'s str>,
    query: &'s HashMap<String, String>,
) -> impl Iterator<Item = &'s StoredServiceAccount> + 's {
    store.objects.values().filter(move |stored| {
        namespace.is_none_or(|ns| stored.sa.namespace == ns)
            && label_selector_matches(query.get("labelSelector"), &stored.sa.labels)
    })
}

fn list_service_accounts(
    inner: &Inner,
    namespace: Option<&str>,
    query: &HashMap<String, String>,
    metadata_form: bool,
) -> Response<Body> {
    let store = lock(&inner.store);
    // Continue tokens are "<resourceVersion>:<offset>"; later pages report the first page's version.
    let (list_version, offset) = query
        .get("continue")
        .and_then(|token| token.split_once(':'))
        .and_then(|(rv, offset)| Some((rv.parse().ok()?, offset.parse().ok()?)))
        .unwrap_or((store.resource_version, 0usize));
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    let all: Vec<&StoredServiceAccount> = selected(&store, namespace, query).collect();
    let page: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .map(|stored| object_json(stored, metadata_form))
        .collect();
    let next = offset.saturating_add(page.len());
    let mut list_meta = json!({"resourceVersion": list_version.to_string()});
    if next < all.len() {
        list_meta["continue"] = json!(format!("{list_version}:{next}"));
        list_meta["remainingItemCount"] = json!(all.len() - next);
    }
    let (api_version, kind) = if metadata_form {
        ("meta.k8s.io/v1", "PartialObjectMetadataList")
    } else {
        ("v1", "ServiceAccountList")
    };
    json_response(
        200,
        &json!({"apiVersion": api_version, "kind": kind, "metadata": list_meta, "items": page}),
    )
}

fn event_line(kind: &str, object: Value) -> Bytes {
    let mut bytes =
        serde_json::to_vec(&json!({"type": kind, "object": object})).expect("serialise event");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn bookmark_line(resource_version: u64, metadata_form: bool, initial_events_end: bool) -> Bytes {
    let (api_version, kind) = if metadata_form {
        ("meta.k8s.io/v1", "PartialObjectMetadata")
    } else {
        ("v1", "ServiceAccount")
    };
    let mut metadata = json!({"resourceVersion": resource_version.to_string()});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    event_line(
        "BOOKMARK",
        json!({"apiVersion": api_version, "kind": kind, "metadata": metadata}),
    )
}

fn watch_service_accounts(
    inner: &Inner,
    namespace: Option<String>,
    query: &HashMap<String, String>,
    metadata_form: bool,
) -> Response<Body> {
    let flag = |key: &str| matches!(query.get(key).map(String::as_str), Some("true" | "1"));
    let bookmarks = flag("allowWatchBookmarks");
    let initial_events = flag("sendInitialEvents");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let bookmark_interval = lock(&inner.controls).bookmark_interval;
    let requested: Option<u64> = query
        .get("resourceVersion")
        .filter(|rv| !rv.is_empty() && rv.as_str() != "0")
        .and_then(|rv| rv.parse().ok());

    let in_namespace = {
        let namespace = namespace.clone();
        move |stored: &StoredServiceAccount| {
            namespace
                .as_deref()
                .is_none_or(|ns| stored.sa.namespace == ns)
        }
    };
    let label_selector = query.get("labelSelector").cloned();

    // Snapshot the backlog and subscribe under one lock, so no event falls between them.
    let (backlog, receiver, start_version) = {
        let store = lock(&inner.store);
        let receiver = inner.events.subscribe();
        let mut backlog = Vec::new();
        match requested {
            Some(rv) if !initial_events && rv < store.compacted_at => {
                let status = status_object(
                    410,
                    "Expired",
                    &format!("too old resource version: {rv} ({})", store.compacted_at),
                );
                backlog.push(event_line("ERROR", status));
                let body = Body::from(backlog.concat());
                return Response::builder()
                    .status(200)
                    .header(CONTENT_TYPE, "application/json")
                    .body(body)
                    .expect("response");
            }
            Some(rv) if !initial_events => {
                for event in store.log.iter().filter(|e| e.object.resource_version > rv) {
                    if in_namespace(&event.object)
                        && label_selector_matches(label_selector.as_ref(), &event.object.sa.labels)
                    {
                        backlog.push(event_line(
                            event.kind.as_str(),
                            object_json(&event.object, metadata_form),
                        ));
                    }
                }
            }
            _ => {
                for stored in selected(&store, namespace.as_deref(), query) {
                    backlog.push(event_line("ADDED", object_json(stored, metadata_form)));
                }
                if initial_events {
                    backlog.push(bookmark_line(store.resource_version, metadata_form, true));
                }
            }
        }
        // The backlog brings the client up to the current version, so bookmarks may start there.
        let start_version = store.resource_version;
        (backlog, receiver, start_version)
    };

    let (sender, chunks) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut receiver = receiver;
        let mut last_version = start_version;
        for line in backlog {
            if sender.send(line).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(bookmark_interval);
        ticker.tick().await;
        loop {
            let line = tokio::select! {
                _ = &mut deadline => return,
                _ = ticker.tick(), if bookmarks => bookmark_line(last_version, metadata_form, false),
                message = receiver.recv() => match message {
                    Ok(Broadcast::Event(event)) => {
                        last_version = last_version.max(event.object.resource_version);
                        if !in_namespace(&event.object)
                            || !label_selector_matches(label_selector.as_ref(), &event.object.sa.labels)
                        {
                            continue;
                        }
                        event_line(event.kind.as_str(), object_json(&event.object, metadata_form))
                    }
                    // Closed on purpose, or this watch fell too far behind: end it, the client re-watches.
                    Ok(Broadcast::CloseWatches) | Err(_) => return,
                },
            };
            if sender.send(line).await.is_err() {
                return;
            }
        }
    });
    watch_response(chunks)
}

/// A stored object as a list or watch returns it: whole, or its `PartialObjectMetadata`.
fn stored_object_json(object: &Value, metadata_form: bool) -> Value {
    if metadata_form {
        json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": object["metadata"].clone(),
        })
    } else {
        object.clone()
    }
}

/// List or watch of Secrets / MutatingWebhookConfigurations.
fn list_or_watch_objects(
    inner: &Inner,
    kind: Kind,
    namespace: Option<String>,
    query: &HashMap<String, String>,
    metadata_form: bool,
    watch: bool,
) -> Response<Body> {
    let Some(selection) = Selection::new(
        kind,
        namespace,
        query.get("fieldSelector").map(String::as_str),
    ) else {
        return status_response(
            400,
            "BadRequest",
            "the fake API server only understands fieldSelector=metadata.name=NAME",
        );
    };
    let store = lock(&inner.objects);
    if !watch {
        let (version, items) = store.list(&selection);
        let items: Vec<Value> = items
            .iter()
            .map(|object| stored_object_json(object, metadata_form))
            .collect();
        let list_kind = if metadata_form {
            "PartialObjectMetadataList".to_owned()
        } else {
            format!("{}List", kind.kind())
        };
        let api_version = if metadata_form {
            "meta.k8s.io/v1"
        } else {
            kind.api_version()
        };
        return json_response(
            200,
            &json!({"apiVersion": api_version, "kind": list_kind,
                    "metadata": {"resourceVersion": version.to_string()}, "items": items}),
        );
    }
    let requested: Option<u64> = query
        .get("resourceVersion")
        .filter(|rv| !rv.is_empty() && rv.as_str() != "0")
        .and_then(|rv| rv.parse().ok());
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let (backlog, receiver) = match requested {
        Some(version) => {
            let (events, receiver) = store.watch_from(&selection, version);
            let lines = events
                .into_iter()
                .map(|e| event_line(e.event_type, stored_object_json(&e.object, metadata_form)))
                .collect();
            (lines, receiver)
        }
        None => {
            let (version, items) = store.list(&selection);
            let (_, receiver) = store.watch_from(&selection, version);
            let lines = items
                .iter()
                .map(|object| event_line("ADDED", stored_object_json(object, metadata_form)))
                .collect::<Vec<_>>();
            (lines, receiver)
        }
    };
    drop(store);

    let (sender, chunks) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut receiver = receiver;
        for line in backlog {
            if sender.send(line).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            let line = tokio::select! {
                _ = &mut deadline => return,
                message = receiver.recv() => match message {
                    Ok(ObjectBroadcast::Event(event)) => {
                        if !selection.matches_event(&event) {
                            continue;
                        }
                        event_line(event.event_type, stored_object_json(&event.object, metadata_form))
                    }
                    // Closed on purpose, or this watch fell too far behind: end it, the client re-watches.
                    Ok(ObjectBroadcast::Close) | Err(_) => return,
                },
            };
            if sender.send(line).await.is_err() {
                return;
            }
        }
    });
    watch_response(chunks)
}

/// A watch's chunked answer: one JSON line per chunk the watch task sends, until it drops its sender.
fn watch_response(chunks: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures::stream::unfold(chunks, |mut chunks| async move {
        chunks
            .recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(chunk), chunks))
    });
    Response::builder()
        .status(200)
        .header(CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .expect("response")
}

async fn subject_access_review(inner: &Inner, request: Request<Incoming>) -> Response<Body> {
    let body = match axum::body::to_bytes(Body::new(request.into_body()), 1 << 20).await {
        Ok(body) => body,
        Err(_) => return status_response(400, "BadRequest", "unreadable body"),
    };
    let Ok(mut review) = serde_json::from_slice::<Value>(&body) else {
        return status_response(400, "BadRequest", "body is not JSON");
    };
    lock(&inner.reviews).push(review.clone());
    let spec = &review["spec"];
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let resource = &spec["resourceAttributes"];
    let attributes = ReviewAttributes {
        user: text(&spec["user"]),
        groups: spec["groups"]
            .as_array()
            .map(|groups| groups.iter().map(text).collect())
            .unwrap_or_default(),
        verb: text(&resource["verb"]),
        api_group: text(&resource["group"]),
        resource: text(&resource["resource"]),
        subresource: text(&resource["subresource"]),
        name: text(&resource["name"]),
        namespace: text(&resource["namespace"]),
    };
    let rules = lock(&inner.controls).rules.clone();
    let denied_by = rules
        .iter()
        .position(|rule| !rule.allow && rule.matches(&attributes));
    let allowed_by = rules
        .iter()
        .position(|rule| rule.allow && rule.matches(&attributes));
    let status = match (denied_by, allowed_by) {
        (Some(index), _) => {
            json!({"allowed": false, "denied": true, "reason": format!("denied by fake rule #{index}")})
        }
        (None, Some(index)) => {
            json!({"allowed": true, "reason": format!("allowed by fake rule #{index}")})
        }
        (None, None) => json!({"allowed": false, "reason": format!(
            "no rule allows user {:?} to {} {}/{} {:?} in namespace {:?}",
            attributes.user, attributes.verb, attributes.api_group, attributes.resource, attributes.name, attributes.namespace
        )}),
    };
    review["status"] = status;
    if review.get("apiVersion").is_none() {
        review["apiVersion"] = json!("authorization.k8s.io/v1");
    }
    if review.get("kind").is_none() {
        review["kind"] = json!("SubjectAccessReview");
    }
    json_response(201, &review)
}
