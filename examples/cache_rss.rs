//! Measures what the service-account cache costs with 10,000 service accounts (3 annotations each):
//! time from start to synced, process RSS, and the heap the cache itself holds.
//!
//! `cargo run --release --example cache_rss [-- COUNT [last-applied|bare]]`
//!
//! With `last-applied`, each service account also carries a ~400-byte
//! `kubectl.kubernetes.io/last-applied-configuration` annotation, as `kubectl apply` leaves behind;
//! the cache drops it (only `azure.workload.identity/` annotations are kept). With `bare`, the
//! service accounts carry no annotation and have 20-character names spread over 1,000 namespaces,
//! as most of a cluster's do (`benches/sa_memory.sh` measures the same with the real binary).
//!
//! The fake API server runs in this process too, so RSS includes its copy of the objects; the
//! counting allocator separates what the cache retains (heap before start vs. while running, and
//! after dropping the cache again).

#[path = "../tests/support/fake_apiserver.rs"]
mod fake_apiserver;

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use azwi_webhook::heap::Allocator;
use azwi_webhook::k8s::cache::CachedServiceAccounts;
use azwi_webhook::k8s::client::{client_from_config, ClientOptions};
use azwi_webhook::k8s::live::LiveServiceAccounts;
use fake_apiserver::FakeApiServer;

/// Counts live heap bytes, so the cache's own share can be told apart from the fake's, over the
/// webhook's own allocator.
struct Counting;

static HEAP: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HEAP.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the webhook's allocator.
        unsafe { Allocator.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { Allocator.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HEAP.fetch_add(new_size, Ordering::Relaxed);
        HEAP.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as for `dealloc`; the new size is non-zero per the GlobalAlloc contract.
        unsafe { Allocator.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// A `/proc/self/status` field in KiB (Linux only; 0 elsewhere).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let rest = line.strip_prefix(field)?.strip_prefix(':')?;
                rest.trim().trim_end_matches("kB").trim().parse().ok()
            })
        })
        .unwrap_or(0)
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(10_000);
    let mode = std::env::args().nth(2);
    let last_applied = mode.as_deref() == Some("last-applied");
    let bare = mode.as_deref() == Some("bare");
    let fake = FakeApiServer::start().await;
    if bare {
        for i in 0..count {
            let (namespace, name) = (format!("ns-{:05}", i % 1000), format!("svc-account-{i:08}"));
            fake.add_service_account(&namespace, &name, &[]);
        }
    }
    for i in (0..count).filter(|_| !bare) {
        let client_id = format!("{i:08x}-0000-4000-8000-000000000000");
        let (namespace, name) = (format!("team-{}", i % 100), format!("workload-{i}"));
        let applied = format!(
            r#"{{"apiVersion":"v1","kind":"ServiceAccount","metadata":{{"annotations":{{"azure.workload.identity/client-id":"{client_id}","azure.workload.identity/tenant-id":"72f988bf-86f1-41af-91ab-2d7cd011db47","azure.workload.identity/service-account-token-expiration":"3600"}},"name":"{name}","namespace":"{namespace}"}}}}"#
        );
        let mut annotations = vec![
            ("azure.workload.identity/client-id", client_id.as_str()),
            (
                "azure.workload.identity/tenant-id",
                "72f988bf-86f1-41af-91ab-2d7cd011db47",
            ),
            (
                "azure.workload.identity/service-account-token-expiration",
                "3600",
            ),
        ];
        if last_applied {
            annotations.push((
                "kubectl.kubernetes.io/last-applied-configuration",
                applied.as_str(),
            ));
        }
        fake.add_service_account(&namespace, &name, &annotations);
    }
    let watch_client = client_from_config(fake.config(), &ClientOptions::for_watches())?;
    let live = LiveServiceAccounts::new(client_from_config(
        fake.config(),
        &ClientOptions::for_requests(),
    )?);
    let rss_before = status_kib("VmRSS");
    let heap_before = HEAP.load(Ordering::Relaxed);

    let started = Instant::now();
    let (cache, task) = CachedServiceAccounts::spawn(watch_client, live);
    tokio::time::timeout(Duration::from_secs(120), cache.wait_synced()).await?;
    let synced_in = started.elapsed();
    // Let the list pages and decode buffers be freed before measuring what stays.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = status_kib("VmRSS");
    let heap_after = HEAP.load(Ordering::Relaxed);

    task.abort();
    let _ = task.await;
    let entries = cache.len();
    drop(cache);
    let heap_dropped = HEAP.load(Ordering::Relaxed);

    let annotations = if bare {
        "no annotations"
    } else {
        "3 annotations each"
    };
    println!("service accounts:           {entries} ({annotations})");
    println!("start to synced:            {synced_in:?}");
    println!(
        "RSS before / after sync:    {} / {} (+{}), peak {}",
        mib(rss_before as f64 * 1024.0),
        mib(rss_after as f64 * 1024.0),
        mib(rss_after.saturating_sub(rss_before) as f64 * 1024.0),
        mib(status_kib("VmHWM") as f64 * 1024.0),
    );
    let held = heap_after.saturating_sub(heap_dropped);
    println!(
        "heap held by the cache:     {} ({} bytes per service account)",
        mib(held as f64),
        held / entries.max(1)
    );
    println!(
        "heap growth during sync:    {}",
        mib(heap_after.saturating_sub(heap_before) as f64)
    );
    Ok(())
}
