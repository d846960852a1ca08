//! The edge's HTTP server: the router over HTTP/1.1 connections, served with hyper directly
//! rather than through `axum::serve`, for the limits that one does not expose.
//!
//! hyper answers a request whose head it cannot take by itself, with an empty body: too many
//! header fields (431), a head over its buffer (431), a URI over 64 KiB (414). Its limits are
//! set above the edge's own ([`crate::edge::head`]), which answer in the API's JSON error
//! shape, so only a head far beyond those meets hyper's bare answer. A client that has not
//! sent a whole head within [`HEADER_READ_TIMEOUT`] is disconnected (a slow-headers client
//! holds no connection forever).
//!
//! Shutting down: no new connections; each open one finishes the request it is serving and
//! closes; [`serve`] returns when all have.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Duration;
use tower::ServiceExt;

/// The most header fields hyper takes (the edge refuses more than
/// [`crate::edge::head::MAX_HEADERS`] itself).
const HYPER_MAX_HEADERS: usize = 512;

/// How long a client has to send a request's whole head.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long to wait before accepting again after `accept` failed (out of file descriptors,
/// say): the failure is not the next client's.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `app` on `listener` until `shutdown` completes, then until the open connections
/// have finished their requests.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection(stream, peer, app.clone(), stopping.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            // Finished connections are reaped as they go.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
}

/// Serves one connection from `peer` until it closes, or until `stopping` turns true and its
/// request in flight is answered.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    mut stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .max_headers(HYPER_MAX_HEADERS)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let mut asked_to_stop = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            changed = stopping.wait_for(|stop| *stop), if !asked_to_stop => {
                // Stopping (or the server is gone): finish the request in flight, then close.
                let _ = changed;
                asked_to_stop = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
