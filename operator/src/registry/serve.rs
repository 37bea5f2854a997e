//! The registry's HTTP/1 server: `axum::serve` with the limits it lacks. A client that sends
//! no request headers (or, between requests, nothing) within the header timeout, or stalls
//! mid-body longer than the body timeout, is disconnected; connections over the cap wait in
//! the listen backlog until one ends.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower_http::timeout::RequestBodyTimeout;

/// The server's limits.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// For a request's headers to arrive, and for the next request on an idle keep-alive
    /// connection (hyper starts it again once a response is sent).
    pub header_read_timeout: Duration,
    /// The longest pause between two pieces of a request body.
    pub body_idle_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Serves `app` on `listener` until `shutdown`, then lets open connections finish their
/// requests and returns once all have closed.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let (stop, stopped) = watch::channel(false);
    let app = RequestBodyTimeout::new(app, limits.body_idle_timeout);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, typically: let connections end first.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let _slot = slot;
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = async { drop(stopped.wait_for(|s| *s).await) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "registry connection ended");
            }
        });
    }
    let _ = stop.send(true);
    // Every connection holds a slot until it ends.
    let _all = slots.acquire_many(max as u32).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::StatusCode;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// A server whose one route reads the request body whole: 200, or 400 if it fails.
    async fn start(limits: ServeLimits) -> (std::net::SocketAddr, watch::Sender<bool>) {
        let app = axum::Router::new().fallback(|body: Body| async move {
            match axum::body::to_bytes(body, usize::MAX).await {
                Ok(_) => StatusCode::OK,
                Err(_) => StatusCode::BAD_REQUEST,
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = watch::channel(false);
        tokio::spawn(serve(listener, app, limits, async move {
            let _ = rx.wait_for(|s| *s).await;
        }));
        (addr, tx)
    }

    const SHORT: ServeLimits = ServeLimits {
        header_read_timeout: Duration::from_millis(200),
        body_idle_timeout: Duration::from_millis(200),
        max_connections: 1,
    };

    /// What the server sends until it closes the connection (bounded: a test never hangs).
    async fn until_closed(c: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), c.read_to_end(&mut out));
        read.await.expect("the server closes the connection").ok();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn a_client_that_sends_no_headers_is_disconnected() {
        let (addr, _stop) = start(SHORT).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        until_closed(&mut c).await;
    }

    #[tokio::test]
    async fn an_idle_keep_alive_connection_is_closed() {
        let (addr, _stop) = start(SHORT).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(until_closed(&mut c).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn a_body_that_stalls_is_cut_off() {
        let (addr, _stop) = start(SHORT).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        let head = b"PUT / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc";
        c.write_all(head).await.unwrap();
        assert!(until_closed(&mut c).await.starts_with("HTTP/1.1 400"));
    }

    #[tokio::test]
    async fn connections_over_the_cap_wait_for_a_free_slot() {
        let (addr, _stop) = start(ServeLimits {
            header_read_timeout: Duration::from_secs(60),
            ..SHORT
        })
        .await;
        let first = TcpStream::connect(addr).await.unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        second
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut byte = [0u8; 1];
        let waiting = tokio::time::timeout(Duration::from_millis(300), second.read(&mut byte));
        assert!(
            waiting.await.is_err(),
            "served while the only slot is taken"
        );
        drop(first);
        assert!(until_closed(&mut second).await.starts_with("HTTP/1.1 200"));
    }
}
