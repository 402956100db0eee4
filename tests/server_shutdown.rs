//! Graceful shutdown: readiness fails at once, in-flight requests finish, serve() returns Ok.

#[path = "support/tls.rs"]
mod tls_support;

use std::sync::Arc;
use std::time::Duration;

use azwi_webhook::review::{ReviewHandler, ReviewReply};
use azwi_webhook::server::{router, Readiness, ServeOptions};
use azwi_webhook::tls::TlsMinVersion;
use bytes::Bytes;
use futures::future::BoxFuture;
use tls_support::*;
use tokio::sync::{mpsc, Semaphore};

const DEADLINE: Duration = Duration::from_secs(10);

/// Reports that a request arrived, then holds it until the test releases the gate.
struct Gated {
    started: mpsc::UnboundedSender<()>,
    gate: Arc<Semaphore>,
}

impl ReviewHandler for Gated {
    fn refuse(
        &self,
        refusal: azwi_webhook::review::Refusal,
        message: &str,
    ) -> azwi_webhook::review::ReviewReply {
        azwi_webhook::admission::refusal_reply(refusal, message)
    }

    fn review(&self, body: Bytes, _: Option<Duration>) -> BoxFuture<'_, ReviewReply> {
        Box::pin(async move {
            let _ = self.started.send(());
            let _permit = self.gate.acquire().await;
            ReviewReply {
                status: 200,
                body: body.to_vec(),
            }
        })
    }
}

async fn run_in_flight_request_completes(http: Http) {
    let pki = generate_ca_and_leaf(&["localhost"]);
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let handler = Arc::new(Gated {
        started: started_tx,
        gate: gate.clone(),
    });
    let readiness = Readiness::new();
    readiness.set_certificate_loaded(true);
    let options = ServeOptions {
        // Long enough for the readiness probes below on a loaded machine: the listener closes after it.
        shutdown_delay: Duration::from_secs(2),
        shutdown_grace: Duration::from_secs(10),
        ..ServeOptions::default()
    };
    let mut server = TestServer::start(
        router(handler),
        static_tls(&pki, TlsMinVersion::V1_3, None),
        readiness.clone(),
        options,
    );
    let health = server.health_addr;
    assert!(
        eventually(DEADLINE, || async move {
            matches!(get_plain(health, "/readyz").await, Ok((200, _)))
        })
        .await
    );

    let (addr, ca) = (server.addr, pki.ca.pem.clone());
    let in_flight = tokio::spawn(async move {
        request(
            addr,
            &ClientOpts::new(&ca, http),
            "POST",
            "/mutate-v1-pod",
            b"{\"slow\":1}".to_vec(),
        )
        .await
    });
    tokio::time::timeout(DEADLINE, started.recv())
        .await
        .unwrap()
        .unwrap();

    server.trigger_shutdown();
    assert!(
        eventually(DEADLINE, || async { !readiness.is_ready() }).await,
        "readiness must fail right after the trigger"
    );
    // During the delay the health listener still answers, saying why.
    let (status, text) = get_plain(health, "/readyz").await.unwrap();
    assert_eq!(status, 503);
    assert!(text.contains("shutting down"), "{text}");

    // After the delay the webhook port stops accepting while the request is still held.
    let addr = server.addr;
    assert!(
        eventually(DEADLINE, || async move {
            tokio::net::TcpStream::connect(addr).await.is_err()
        })
        .await,
        "listener still accepting after the shutdown delay"
    );
    assert!(
        !server.task.is_finished(),
        "serve returned with a request in flight"
    );

    gate.add_permits(1);
    let reply = tokio::time::timeout(DEADLINE, in_flight)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, b"{\"slow\":1}");
    let served = tokio::time::timeout(DEADLINE, &mut server.task)
        .await
        .unwrap()
        .unwrap();
    assert!(served.is_ok());
}

#[tokio::test]
async fn in_flight_http2_request_completes_during_shutdown() {
    run_in_flight_request_completes(Http::V2).await;
}

#[tokio::test]
async fn in_flight_http1_request_completes_during_shutdown() {
    run_in_flight_request_completes(Http::V1).await;
}

#[tokio::test]
async fn idle_server_shuts_down_promptly() {
    let pki = generate_ca_and_leaf(&["localhost"]);
    let readiness = Readiness::new();
    let mut server = TestServer::start(
        router(Arc::new(Echo)),
        static_tls(&pki, TlsMinVersion::V1_3, None),
        readiness.clone(),
        ServeOptions {
            shutdown_delay: Duration::ZERO,
            ..ServeOptions::default()
        },
    );
    // An idle keep-alive connection must not hold shutdown for the whole grace period.
    let _idle = connect(server.addr, &ClientOpts::new(&pki.ca.pem, Http::V2))
        .await
        .unwrap();
    let (status, _, _) = post(server.addr, &pki.ca.pem, "/mutate-v1-pod", b"{}", Http::V2)
        .await
        .unwrap();
    assert_eq!(status, 200);
    server.trigger_shutdown();
    let served = tokio::time::timeout(Duration::from_secs(5), &mut server.task).await;
    assert!(matches!(served, Ok(Ok(Ok(())))), "{served:?}");
    assert!(readiness.is_shutting_down());
}

#[tokio::test]
async fn silent_client_is_dropped_after_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;
    let pki = generate_ca_and_leaf(&["localhost"]);
    let server = TestServer::start(
        router(Arc::new(Echo)),
        static_tls(&pki, TlsMinVersion::V1_3, None),
        Readiness::new(),
        ServeOptions {
            tls_handshake_timeout: Duration::from_millis(200),
            ..ServeOptions::default()
        },
    );
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 16];
    // The server closes the socket: read returns EOF (or a reset) well before our deadline.
    let read = tokio::time::timeout(DEADLINE, tcp.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
}
