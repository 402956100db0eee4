//! The plain-HTTP metrics listener, scraped over a real TCP connection.

use std::net::SocketAddr;
use std::time::Duration;

use azwi_webhook::metrics::Outcome;
use azwi_webhook::metrics::{serve_metrics, LookupResult, LookupSource, Metrics, RbacResult};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(metrics: Metrics) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_metrics(listener, metrics, async {
        let _ = stopped.await;
    }));
    Server { addr, stop, task }
}

/// Status line, headers (lower-cased names) and body of one HTTP/1.1 request.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut raw))
        .await
        .expect("the server answers and closes")
        .unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Lines of `body` for series of family `name` (not comments).
fn series<'b>(body: &'b str, name: &str) -> Vec<&'b str> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|r| r.starts_with(['{', ' ']))
        })
        .collect()
}

#[tokio::test]
async fn scrape_shows_exact_series_after_recording() {
    let metrics = Metrics::new().unwrap();
    let server = start(metrics.clone()).await;

    metrics.record_admission(Outcome::Mutated, "team-a", Duration::from_micros(300));
    metrics.record_admission(Outcome::Mutated, "team-a", Duration::from_millis(4));
    metrics.record_admission(Outcome::Ignored, "team-b", Duration::from_micros(20));
    metrics.record_service_account_lookup(LookupSource::Cache, LookupResult::Miss);
    metrics.record_service_account_lookup(LookupSource::Api, LookupResult::Hit);
    metrics.set_service_account_cache_objects(3);
    metrics.record_rbac_check(RbacResult::Denied, false);
    metrics.observe_rbac_check_duration(Duration::from_millis(12));
    metrics.set_tls_certificate_expiry(1_767_225_600);

    let (status, headers, body) = request(server.addr, "GET", "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; version=0.0.4")
    );

    let expected = [
        r#"azwi_admission_requests_total{outcome="mutated",reason="none"} 2"#,
        r#"azwi_admission_requests_total{outcome="ignored",reason="none"} 1"#,
        r#"azwi_admission_requests_total{outcome="denied",reason="invalid_pod"} 0"#,
        r#"azwi_mutation_request_count{namespace="team-a"} 2"#,
        r#"azwi_mutation_request_count{namespace="team-b"} 1"#,
        r#"azwi_mutation_request_bucket{namespace="team-a",le="0.0005"} 1"#,
        r#"azwi_mutation_request_bucket{namespace="team-a",le="0.004"} 2"#,
        r#"azwi_mutation_request_bucket{namespace="team-a",le="+Inf"} 2"#,
        r#"azwi_mutation_request_bucket{namespace="team-b",le="0.0001"} 1"#,
        r#"azwi_service_account_lookups_total{result="miss",source="cache"} 1"#,
        r#"azwi_service_account_lookups_total{result="hit",source="api"} 1"#,
        r#"azwi_service_account_lookups_total{result="hit",source="cache"} 0"#,
        "azwi_service_account_cache_objects 3",
        r#"azwi_rbac_checks_total{cached="false",result="denied"} 1"#,
        "azwi_rbac_check_duration_seconds_count 1",
        "azwi_tls_certificate_expiry_timestamp_seconds 1767225600",
    ];
    for line in expected {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in:\n{body}"
        );
    }
    let build = format!(
        r#"azwi_build_info{{build_date="{}",commit="{}",version="{}"}} 1"#,
        azwi_webhook::build_info::build_date(),
        azwi_webhook::build_info::GIT_COMMIT,
        azwi_webhook::build_info::VERSION
    );
    assert_eq!(series(&body, "azwi_build_info"), [build.as_str()]);
    // Every (outcome, reason) pair, 2 × 4 lookup pairs, 3 × 2 RBAC pairs: all present from the start.
    assert_eq!(
        series(&body, "azwi_admission_requests_total").len(),
        azwi_webhook::metrics::Outcome::ALL.len()
    );
    assert_eq!(series(&body, "azwi_service_account_lookups_total").len(), 8);
    assert_eq!(series(&body, "azwi_rbac_checks_total").len(), 6);
    assert!(body.contains("# TYPE azwi_mutation_request histogram\n"));

    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn each_scrape_sees_current_values() {
    let metrics = Metrics::new().unwrap();
    let server = start(metrics.clone()).await;
    let line = r#"azwi_admission_requests_total{outcome="unchanged",reason="none"}"#;
    for n in 1..=3 {
        metrics.record_admission(Outcome::Unchanged, "ns", Duration::ZERO);
        let (_, _, body) = request(server.addr, "GET", "/metrics").await;
        assert!(
            body.lines().any(|l| l == format!("{line} {n}")),
            "scrape {n}:\n{body}"
        );
    }
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn namespace_cardinality_is_capped_on_the_wire() {
    let metrics = Metrics::with_namespace_limit(3).unwrap();
    let server = start(metrics.clone()).await;
    for i in 0..10 {
        metrics.record_admission(
            Outcome::Mutated,
            &format!("ns-{i}"),
            Duration::from_micros(10),
        );
    }
    let (_, _, body) = request(server.addr, "GET", "/metrics").await;
    let counts = series(&body, "azwi_mutation_request_count");
    assert_eq!(
        counts,
        [
            r#"azwi_mutation_request_count{namespace="_other"} 7"#,
            r#"azwi_mutation_request_count{namespace="ns-0"} 1"#,
            r#"azwi_mutation_request_count{namespace="ns-1"} 1"#,
            r#"azwi_mutation_request_count{namespace="ns-2"} 1"#,
        ]
    );
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let server = start(Metrics::new().unwrap()).await;
    for path in [
        "/",
        "/metricsx",
        "/healthz",
        "/mutate-v1-pod",
        "/metrics/extra",
    ] {
        let (status, _, _) = request(server.addr, "GET", path).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _, _) = request(server.addr, "POST", "/metrics").await;
    assert_eq!(status, 405);
    let _ = server.stop.send(());
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_stops_the_listener() {
    let server = start(Metrics::new().unwrap()).await;
    let addr = server.addr;
    let _ = server.stop.send(());
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("serve_metrics returns after shutdown")
        .unwrap()
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err());
}
