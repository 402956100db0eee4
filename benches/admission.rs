//! The whole admission hot path, bytes in to response bytes out, with an in-memory service account.

mod fixtures;

use std::collections::BTreeMap;
use std::sync::Arc;

use azwi_webhook::admission::Admitter;
use azwi_webhook::k8s::service_accounts::{LookupError, ServiceAccountMeta, ServiceAccounts};
use azwi_webhook::review::BoxFuture;
use azwi_webhook::settings::{ProxySettings, Settings};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// Always answers with the same service account, like a warm cache.
struct OneServiceAccount(Arc<ServiceAccountMeta>);

impl ServiceAccounts for OneServiceAccount {
    fn get<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> BoxFuture<'a, Result<Arc<ServiceAccountMeta>, LookupError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

fn admitter() -> Admitter {
    let settings = Settings {
        audience: "api://AzureADTokenExchange".into(),
        tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
        authority_host: "https://login.microsoftonline.com/".into(),
        identity_binding: None,
        proxy: ProxySettings::default(),
        native_sidecars: false,
    };
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "azure.workload.identity/client-id".to_string(),
        "2b7e3c4d-9f1a-4e5b-8c6d-7a8b9c0d1e2f".to_string(),
    );
    let sa = ServiceAccountMeta {
        namespace: "shop".into(),
        name: "checkout".into(),
        annotations,
    };
    Admitter::new(
        Arc::new(settings),
        Arc::new(OneServiceAccount(Arc::new(sa))),
        azwi_webhook::metrics::Metrics::new().expect("metrics"),
    )
}

fn whole_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let admitter = admitter();
    let body = fixtures::typical_review();
    let mut group = c.benchmark_group("admission");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("typical_pod_whole_path", |b| {
        b.iter(|| runtime.block_on(admitter.admit(black_box(&body), None)))
    });
    group.finish();
}

criterion_group!(benches, whole_path);
criterion_main!(benches);
