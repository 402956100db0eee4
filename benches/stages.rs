//! The admission hot path per stage (decode, plan, encode) and whole, for four pod sizes, beside the
//! naive typed baseline (the upstream method) and the floor (a serde parse-and-skip of the same
//! bytes), all in one run on the same inputs.
//!
//! `cargo bench --bench stages` runs criterion. For instruction counts, which unlike wall time are
//! repeatable on a shared 2-core VM, run one stage in a loop under callgrind:
//! `BENCH_CALLGRIND=<stage>:<size>:<iterations> valgrind --tool=callgrind
//! --toggle-collect='*callgrind_loop*' target/release/deps/stages-*` (see BENCHMARKS.md).

mod baseline;
mod fixtures;

use std::hint::black_box;
use std::sync::Arc;

use azwi_webhook::admission::{response, wire, Admitter};
use azwi_webhook::k8s::service_accounts::{LookupError, ServiceAccounts};
use azwi_webhook::mutate::service_account::ServiceAccountMeta;
use azwi_webhook::mutate::settings::Settings;
use azwi_webhook::mutate::{self, patch, view::PodView, Runtime};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use futures::future::BoxFuture;
use serde::de::IgnoredAny;

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
    Admitter::new(
        Arc::new(fixtures::settings()),
        Arc::new(OneServiceAccount(Arc::new(fixtures::service_account()))),
        azwi_webhook::metrics::Metrics::new().expect("metrics"),
    )
}

/// Everything the per-stage benches need, built once per size.
struct Inputs {
    body: Vec<u8>,
    settings: Settings,
    sa: ServiceAccountMeta,
}

/// Stage 1: the envelope and the borrowed pod view, in one pass.
fn decode(body: &[u8]) -> wire::Review<'_> {
    wire::decode(body).expect("fixture decodes")
}

fn pod_of<'r, 'a>(review: &'r wire::Review<'a>) -> &'r PodView<'a> {
    match &review.request.object {
        wire::Object::Pod(pod) => pod,
        other => panic!("fixture is not a decoded pod: {other:?}"),
    }
}

/// Stage 3: the patch array and the response envelope around it.
fn encode(version: wire::ReviewVersion, uid: &str, mutation: &mutate::Plan) -> Vec<u8> {
    let patch_json = patch::to_json(&mutation.ops);
    response::allowed(version, uid, Some(&patch_json), &mutation.warnings)
}

fn stages(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        // The lookup runs under a timeout, as in the server.
        .enable_time()
        .build()
        .expect("runtime");
    let admitter = admitter();
    for (size, body) in fixtures::all() {
        let inputs = Inputs {
            body,
            settings: fixtures::settings(),
            sa: fixtures::service_account(),
        };
        let body = inputs.body.as_slice();
        let mut group = c.benchmark_group(format!("admission/{size}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        // A ~1 MiB case takes milliseconds per iteration on the baseline: fewer samples suffice.
        if body.len() > 512 * 1024 {
            group.sample_size(20);
        }
        group.bench_function(BenchmarkId::from_parameter("floor_ignored_any"), |b| {
            b.iter(|| serde_json::from_slice::<IgnoredAny>(black_box(body)))
        });
        group.bench_function(BenchmarkId::from_parameter("decode"), |b| {
            b.iter(|| {
                let review = decode(black_box(body));
                black_box(pod_of(&review));
                black_box(review.uid.len())
            })
        });
        group.bench_function(BenchmarkId::from_parameter("decode_serde"), |b| {
            b.iter(|| {
                let review = wire::decode_with_serde(black_box(body)).expect("fixture decodes");
                black_box(pod_of(&review));
                black_box(review.uid.len())
            })
        });
        let review = decode(body);
        let pod = pod_of(&review);
        group.bench_function(BenchmarkId::from_parameter("plan"), |b| {
            b.iter(|| {
                mutate::plan(
                    &inputs.settings,
                    Runtime::default(),
                    black_box(pod),
                    &inputs.sa,
                )
            })
        });
        let mutation = mutate::plan(&inputs.settings, Runtime::default(), pod, &inputs.sa)
            .expect("fixture plans");
        group.bench_function(BenchmarkId::from_parameter("encode"), |b| {
            b.iter(|| encode(review.version, &review.uid, black_box(&mutation)))
        });
        group.bench_function(BenchmarkId::from_parameter("hot_path"), |b| {
            b.iter(|| runtime.block_on(admitter.admit(black_box(body), None)))
        });
        group.bench_function(BenchmarkId::from_parameter("naive_baseline"), |b| {
            b.iter(|| baseline::admit(black_box(body), &inputs.settings, &inputs.sa))
        });
        group.finish();
    }
}

/// Runs one stage `iterations` times on one fixture; the only function callgrind collects in.
#[inline(never)]
fn callgrind_loop(stage: &str, body: &[u8], iterations: usize) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        // The lookup runs under a timeout, as in the server.
        .enable_time()
        .build()
        .expect("runtime");
    let admitter = admitter();
    let (settings, sa) = (fixtures::settings(), fixtures::service_account());
    let review = decode(body);
    let pod = pod_of(&review);
    let mutation = mutate::plan(&settings, Runtime::default(), pod, &sa).expect("fixture plans");
    for _ in 0..iterations {
        match stage {
            "floor" => {
                let _ = black_box(serde_json::from_slice::<IgnoredAny>(black_box(body)));
            }
            "decode" => {
                black_box(decode(black_box(body)));
            }
            "decode_serde" => {
                black_box(wire::decode_with_serde(black_box(body)).expect("fixture decodes"));
            }
            "plan" => {
                let _ = black_box(mutate::plan(
                    &settings,
                    Runtime::default(),
                    black_box(pod),
                    &sa,
                ));
            }
            "encode" => {
                black_box(encode(review.version, &review.uid, black_box(&mutation)));
            }
            "hot_path" => {
                black_box(runtime.block_on(admitter.admit(black_box(body), None)));
            }
            "baseline" => {
                black_box(baseline::admit(black_box(body), &settings, &sa));
            }
            other => panic!("unknown stage {other}"),
        }
    }
}

criterion_group!(benches, stages);

fn main() {
    // `BENCH_CALLGRIND=stage:size:iterations`: one stage, no criterion, for instruction counts.
    if let Ok(spec) = std::env::var("BENCH_CALLGRIND") {
        let parts: Vec<&str> = spec.split(':').collect();
        let [stage, size, iterations] = parts[..] else {
            panic!("BENCH_CALLGRIND must be stage:size:iterations, got {spec}");
        };
        let body = fixtures::all()
            .into_iter()
            .find(|(name, _)| *name == size)
            .map(|(_, body)| body)
            .unwrap_or_else(|| panic!("unknown size {size}"));
        let iterations = iterations.parse().expect("iterations is a number");
        callgrind_loop(stage, &body, iterations);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
