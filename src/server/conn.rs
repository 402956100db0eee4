//! Accept loops and per-connection serving with hyper's auto (HTTP/1.1 + HTTP/2) builder.
//!
//! A hand-written loop (rather than axum-server) gives the knobs this webhook needs in one
//! place: TCP_NODELAY on every socket (without it HTTP/2 responses showed a ~40 ms tail), a TLS
//! handshake timeout, header-read timeout, HTTP/2 stream limits with rapid-reset protection, and
//! a drain that lets in-flight requests finish.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::ServeOptions;

pub(crate) type Builder = Arc<auto::Builder<TokioExecutor>>;

/// The HTTP settings shared by every connection.
pub(crate) fn http_builder(options: &ServeOptions) -> Builder {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(options.http2_max_concurrent_streams)
        // CVE-2023-44487 (rapid reset): bound streams the client resets before we accept them,
        // and streams we reset because the client misbehaved.
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(1024))
        .max_header_list_size(64 * 1024)
        .keep_alive_interval(options.http2_keep_alive_interval)
        .keep_alive_timeout(Duration::from_secs(20));
    Arc::new(builder)
}

/// Accepts until `drain` turns true, then waits up to `grace` for open connections to finish
/// their in-flight requests, and aborts whatever is left.
pub(crate) async fn accept_loop<F, Fut>(
    name: &'static str,
    listener: TcpListener,
    mut drain: watch::Receiver<bool>,
    grace: Duration,
    serve_conn: F,
) where
    F: Fn(TcpStream, SocketAddr, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut conns = JoinSet::new();
    let for_conns = drain.clone();
    loop {
        tokio::select! {
            () = drained(&mut drain) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(err) = stream.set_nodelay(true) {
                        tracing::debug!(listener = name, %peer, error = %err, "cannot set TCP_NODELAY");
                    }
                    conns.spawn(serve_conn(stream, peer, for_conns.clone()));
                }
                Err(err) => {
                    // Typically EMFILE: back off briefly instead of spinning on the error.
                    tracing::warn!(listener = name, error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let open = conns.len();
    tracing::info!(
        listener = name,
        open_connections = open,
        "stopped accepting; draining"
    );
    let drained =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            listener = name,
            left = conns.len(),
            "grace period over; closing connections"
        );
        conns.shutdown().await;
    }
}

/// Serves one TLS connection: handshake (bounded), then HTTP.
pub(crate) async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    app: Router,
    builder: Builder,
    drain: watch::Receiver<bool>,
) {
    let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    serve_http(tls, peer, app, &builder, drain).await;
}

/// Serves HTTP/1.1 or HTTP/2 (detected from the preface) until the client closes or a drain
/// asks hyper to finish in-flight requests and close (GOAWAY on HTTP/2).
pub(crate) async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    builder: &auto::Builder<TokioExecutor>,
    mut drain: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service =
        hyper::service::service_fn(move |req: Request<Incoming>| app.clone().oneshot(req));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = drained(&mut drain) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}

/// Completes once a drain is requested (or the sender is gone, which also means shutdown). The
/// borrow guard `wait_for` returns is dropped here: it is not `Send`.
async fn drained(drain: &mut watch::Receiver<bool>) {
    let _ = drain.wait_for(|d| *d).await;
}
