//! Pod creation through a real kube-apiserver with and without the webhook, side by side in one run
//! (`e2e/bench.sh` starts the control plane and runs this; see BENCHMARKS.md).
//!
//! `apiserver_pods [--pods N] [--concurrency C] [--rounds R]`: in each of R rounds, creates N
//! identity-binding pods with C in flight, first in a namespace the webhook is not registered for,
//! then in one it is. Prints pods/s and the client's create latency for both, kube-apiserver's own
//! `apiserver_admission_webhook_admission_duration_seconds` for this webhook (p50/p99 from its
//! histogram buckets), and the SubjectAccessReviews the webhook made.

#[path = "../tests/support/controlplane.rs"]
mod controlplane;
#[path = "../tests/support/process.rs"]
mod process;
#[path = "../tests/support/tls.rs"]
mod tls_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use controlplane::{unique, Certs, ControlPlane, E2eWebhook};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

const CLIENT_ID: &str = "9a3b1c2d-0000-4e5f-8a9b-0c1d2e3f4a5b";
const WEBHOOK_NAME: &str = "mutation.azure-workload-identity.io";

struct Options {
    pods: usize,
    concurrency: usize,
    rounds: usize,
}

fn options() -> Options {
    let mut o = Options {
        pods: 2000,
        concurrency: 16,
        rounds: 2,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--pods", Some(v)) => o.pods = v,
            ("--concurrency", Some(v)) => o.concurrency = v,
            ("--rounds", Some(v)) => o.rounds = v,
            _ => {
                eprintln!("usage: apiserver_pods [--pods N] [--concurrency C] [--rounds R]");
                std::process::exit(2);
            }
        }
    }
    o
}

/// One round in one namespace: pods/s and the sorted create latencies.
async fn create_pods(
    client: &kube::Client,
    ns: &str,
    tag: &str,
    o: &Options,
) -> (f64, Vec<Duration>) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let started = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(0..o.pods)
        .map(|i| {
            let api = api.clone();
            let pod: Pod = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("{tag}-{i}"),
                             "labels": {"azure.workload.identity/use": "true"},
                             "annotations": {"azure.workload.identity/use-identity-binding": "true"}},
                "spec": {"serviceAccountName": "workload",
                         "containers": [{"name": "app", "image": "busybox"},
                                        {"name": "sidecar", "image": "busybox"}]}
            }))
            .expect("pod");
            async move {
                let t = Instant::now();
                if let Err(e) = api.create(&PostParams::default(), &pod).await {
                    panic!("creating a pod failed: {e}");
                }
                t.elapsed()
            }
        })
        .buffer_unordered(o.concurrency)
        .collect()
        .await;
    let rate = o.pods as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    (rate, latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Cumulative bucket counts of histogram `family` over the samples whose labels include `labels`.
fn buckets(metrics: &str, family: &str, labels: &[&str]) -> BTreeMap<String, f64> {
    let prefix = format!("{family}_bucket{{");
    metrics
        .lines()
        .filter(|l| l.starts_with(&prefix) && labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?.to_owned();
            let count = l.rsplit(' ').next()?.parse::<f64>().ok()?;
            Some((le, count))
        })
        .fold(BTreeMap::new(), |mut m, (le, c)| {
            *m.entry(le).or_insert(0.0) += c;
            m
        })
}

/// The quantile as Prometheus' histogram_quantile computes it (linear within the bucket).
fn histogram_quantile(
    q: f64,
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, c)| {
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::NAN)
            };
            (bound, c - before.get(le).copied().unwrap_or(0.0))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(bound, count) in &buckets {
        if count >= rank {
            if bound.is_infinite() {
                return Some(lower.0);
            }
            let width = count - lower.1;
            let into = if width > 0.0 {
                (rank - lower.1) / width
            } else {
                1.0
            };
            return Some(lower.0 + (bound - lower.0) * into);
        }
        lower = (bound, count);
    }
    None
}

/// User plus system CPU time of process `pid` (utime and stime of /proc/PID/stat).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields.
    let after = stat.rsplit(')').next().expect("stat fields");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    // SAFETY: sysconf takes a plain integer name and has no other effect.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// The counters compared before and after the rounds.
struct Snapshot {
    /// kube-apiserver's admission-duration buckets for our webhook.
    apiserver: BTreeMap<String, f64>,
    /// The webhook's own `azwi_mutation_request` buckets for the namespace it serves.
    webhook: BTreeMap<String, f64>,
    cpu_seconds: f64,
    /// SubjectAccessReviews sent (`azwi_rbac_checks_total{cached="false"}`).
    sars: u64,
}

impl Snapshot {
    async fn take(client: &kube::Client, webhook: &E2eWebhook, namespace: &str) -> Self {
        let apiserver_labels = [&*format!("name=\"{WEBHOOK_NAME}\""), "rejected=\"false\""];
        let own_labels = [&*format!("namespace=\"{namespace}\"")];
        Self {
            apiserver: buckets(
                &apiserver_metrics(client).await,
                "apiserver_admission_webhook_admission_duration_seconds",
                &apiserver_labels,
            ),
            webhook: buckets(
                &webhook.running.metrics().await,
                "azwi_mutation_request",
                &own_labels,
            ),
            cpu_seconds: cpu_seconds(webhook.running.child.pid()),
            sars: webhook
                .metric("azwi_rbac_checks_total", &["cached=\"false\""])
                .await,
        }
    }
}

async fn apiserver_metrics(client: &kube::Client) -> String {
    let request = axum::http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    client
        .request_text(request)
        .await
        .expect("kube-apiserver /metrics")
}

#[tokio::main]
async fn main() {
    let o = options();
    let cp = ControlPlane::from_env();
    let client = kube::Client::try_default()
        .await
        .expect("kube client from KUBECONFIG");

    let ca = tls_support::TestCa::new("token proxy CA").pem;
    let env = [
        (
            "AZURE_KUBERNETES_TOKEN_PROXY",
            "https://token-proxy.e2e.test:8443",
        ),
        ("AZURE_KUBERNETES_SNI_NAME", "token-proxy.e2e.test"),
        ("AZURE_KUBERNETES_CA_DATA", ca.as_str()),
    ];
    let webhook = E2eWebhook::start(&cp, Certs::Provided, &[], &env).await;
    let with = cp.namespace("load-webhook");
    let without = cp.namespace("load-plain");
    for ns in [&with, &without] {
        cp.service_account(
            ns,
            "workload",
            &[("azure.workload.identity/client-id", CLIENT_ID)],
        );
        cp.allow_managed_identity(ns, "workload", CLIENT_ID);
    }
    let _registered = cp.register(&unique("load"), &webhook, &[&with]).await;
    let snapshot = || Snapshot::take(&client, &webhook, &with);
    let before = snapshot().await;

    println!(
        "| round | webhook | pods | pods/s | create p50 | create p99 |\n|---|---|---|---|---|---|"
    );
    let mut rates: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for round in 1..=o.rounds {
        for (label, ns) in [("no", &without), ("yes", &with)] {
            let (rate, lat) = create_pods(&client, ns, &format!("r{round}"), &o).await;
            println!(
                "| {round} | {label} | {} | {rate:.0} | {:.1} ms | {:.1} ms |",
                o.pods,
                percentile(&lat, 0.5).as_secs_f64() * 1e3,
                percentile(&lat, 0.99).as_secs_f64() * 1e3
            );
            rates.entry(label).or_default().push(rate);
        }
    }
    let after = snapshot().await;
    let sar = after.sars - before.sars;
    let cpu = after.cpu_seconds - before.cpu_seconds;
    let reviews = webhook.reviews().await;
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rate_no = median(rates.get_mut("no").expect("rounds without"));
    let rate_yes = median(rates.get_mut("yes").expect("rounds with"));
    println!();
    println!(
        "pods/s, median of rounds: without webhook {rate_no:.0}, with {rate_yes:.0} (ratio {:.2})",
        rate_yes / rate_no
    );
    let fmt = |q, before, after| match histogram_quantile(q, before, after) {
        Some(s) => format!("{:.2} ms", s * 1e3),
        None => "no samples".to_owned(),
    };
    println!(
        "kube-apiserver apiserver_admission_webhook_admission_duration_seconds{{name=\"{WEBHOOK_NAME}\"}}: \
         p50 {}, p99 {} (interpolated within buckets {:?})",
        fmt(0.5, &before.apiserver, &after.apiserver),
        fmt(0.99, &before.apiserver, &after.apiserver),
        after.apiserver.keys().collect::<Vec<_>>()
    );
    println!(
        "webhook's own azwi_mutation_request (namespace {with}): p50 {}, p99 {}",
        fmt(0.5, &before.webhook, &after.webhook),
        fmt(0.99, &before.webhook, &after.webhook)
    );
    let admitted = (o.pods * o.rounds) as f64;
    println!(
        "webhook process CPU: {cpu:.2} s for {admitted} pods, {:.0} us per review",
        cpu / admitted * 1e6
    );
    println!("webhook: {reviews} reviews, {sar} SubjectAccessReviews sent (azwi_rbac_checks_total{{cached=\"false\"}})");
}
