//! One HTTP/2 connection carrying many concurrent requests, as the API server sends them.
#![allow(dead_code)]

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::tls_support::{connect, BoxError, ClientOpts, Http};

/// Opens a TLS connection negotiating `h2` and returns a cloneable request sender.
pub async fn session(addr: SocketAddr, ca_pem: &str) -> Result<SendRequest<Full<Bytes>>, BoxError> {
    let tls = connect(addr, &ClientOpts::new(ca_pem, Http::V2)).await?;
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// POSTs `body` to `path` on the session; returns the status and body.
pub async fn post(
    mut sender: SendRequest<Full<Bytes>>,
    path: &str,
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), BoxError> {
    sender.ready().await?;
    let request = hyper::Request::builder()
        .method("POST")
        .uri(format!("https://localhost{path}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes().to_vec();
    Ok((status, body))
}
