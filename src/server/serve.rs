//! Runs the webhook and plain-HTTP listeners until shutdown, in the order a rolling update needs:
//! readiness fails at once, the listeners keep serving for `shutdown_delay` while endpoint
//! removal propagates, then they stop accepting and in-flight requests get `shutdown_grace` to
//! finish.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::conn::{accept_loop, http_builder, serve_http, serve_tls};
use super::{Readiness, ServeOptions, ServerError};

/// Everything [`serve`] runs. Listeners are bound by the caller, so tests can bind
/// `127.0.0.1:0` and read the port before serving, and bind errors surface before startup.
pub struct Listeners {
    /// The admission listener (TLS).
    pub webhook: std::net::TcpListener,
    /// TLS configuration for it, from [`crate::tls::server_config`].
    pub tls: Arc<rustls::ServerConfig>,
    /// Routes served over TLS, normally [`super::router`].
    pub app: Router,
    /// Plain-HTTP listeners and their routes: health ([`super::health_router`]), metrics.
    pub plain: Vec<(std::net::TcpListener, Router)>,
}

/// Serves until `shutdown` completes, then shuts down gracefully and returns `Ok`.
pub async fn serve(
    listeners: Listeners,
    readiness: Readiness,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let (drain_tx, drain_rx) = watch::channel(false);
    let builder = http_builder(&options);
    let mut tasks = JoinSet::new();

    let webhook = to_tokio(listeners.webhook, "webhook")?;
    let local = webhook.local_addr().ok();
    let mut plain = Vec::with_capacity(listeners.plain.len());
    for (listener, router) in listeners.plain {
        plain.push((to_tokio(listener, "plain")?, router));
    }

    let acceptor = TlsAcceptor::from(listeners.tls);
    let (app, b, handshake) = (
        listeners.app,
        builder.clone(),
        options.tls_handshake_timeout,
    );
    tasks.spawn(accept_loop(
        "webhook",
        webhook,
        drain_rx.clone(),
        options.shutdown_grace,
        move |stream, peer, drain| {
            serve_tls(
                stream,
                peer,
                acceptor.clone(),
                handshake,
                app.clone(),
                b.clone(),
                drain,
            )
        },
    ));
    for (listener, router) in plain {
        let b = builder.clone();
        tasks.spawn(accept_loop(
            "plain",
            listener,
            drain_rx.clone(),
            options.shutdown_grace,
            move |stream, peer, drain| {
                let (router, b) = (router.clone(), b.clone());
                async move { serve_http(stream, peer, router, &b, drain).await }
            },
        ));
    }
    readiness.set_handler_serving(true);
    match local {
        Some(addr) => tracing::info!(%addr, "webhook listener serving"),
        None => tracing::info!("webhook listener serving"),
    }

    shutdown.await;
    readiness.begin_shutdown();
    tracing::info!(delay = ?options.shutdown_delay, "shutdown requested; readiness now failing");
    tokio::time::sleep(options.shutdown_delay).await;
    // Receivers live in the tasks; a send error only means they have all finished already.
    let _ = drain_tx.send(true);
    while let Some(joined) = tasks.join_next().await {
        if let Err(err) = joined {
            tracing::error!(error = %err, "listener task failed");
        }
    }
    readiness.set_handler_serving(false);
    tracing::info!("shutdown complete");
    Ok(())
}

fn to_tokio(
    listener: std::net::TcpListener,
    name: &'static str,
) -> Result<TcpListener, ServerError> {
    listener
        .set_nonblocking(true)
        .and_then(|()| TcpListener::from_std(listener))
        .map_err(|source| ServerError::Listener { name, source })
}

/// Completes on SIGTERM (what the kubelet sends) or Ctrl-C. If signal handlers cannot be
/// installed it logs and never completes, rather than shutting down spuriously.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("received Ctrl-C"),
        () = term => tracing::info!("received SIGTERM"),
    }
}
