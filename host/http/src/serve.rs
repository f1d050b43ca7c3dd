//! The accept loop: HTTP/1.1 connections on a bound listener, each request answered by a
//! handler, until a cancellation token fires; then no new connections, and open ones get a grace
//! period before they are aborted. Every connection task is owned here and awaited.
//!
//! Limits, so that slow or idle clients cannot wear a listener down ([`Limits`]): a time limit on
//! reading a request's headers (a slowloris client is cut off), an idle limit on a connection
//! that carries no request and moves no byte (keep-alive connections are not kept forever), and a
//! maximum number of open connections (beyond it, a connection gets `503` and is closed at once).
//! An accept error (out of file descriptors) backs off, up to a second, and is logged once per
//! second with a count, not once per attempt.
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::tls_server::ServerTls;
use crate::{Body, Https};

/// How much a listener lets clients hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request's headers.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no byte moved for this long is closed.
    pub idle_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
}

impl Default for Limits {
    /// nginx's defaults or stricter: 10 s for headers, 75 s idle, 10000 connections.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            max_connections: 10_000,
        }
    }
}

/// Accept connections on `listener` and answer each request with `handler(request, remote,
/// local)` until `stop` is cancelled; then stop accepting and wait up to `grace` for open
/// requests before closing their connections. [`Limits::default`] apply.
pub async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    stop: CancellationToken,
    grace: Duration,
) where
    H: Fn(Request<Incoming>, SocketAddr, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    serve_with(listener, handler, stop, grace, Limits::default()).await
}

/// [`serve`] with these `limits`.
pub async fn serve_with<H, F>(
    listener: TcpListener,
    handler: H,
    stop: CancellationToken,
    grace: Duration,
    limits: Limits,
) where
    H: Fn(Request<Incoming>, SocketAddr, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    serve_with_tls(listener, None, handler, stop, grace, limits).await
}

/// [`serve_with`], over TLS when `tls` is given: each connection's handshake runs on its own task
/// within `limits.header_read_timeout`, and its requests carry the [`Https`] extension.
pub async fn serve_with_tls<H, F>(
    listener: TcpListener,
    tls: Option<ServerTls>,
    handler: H,
    stop: CancellationToken,
    grace: Duration,
    limits: Limits,
) where
    H: Fn(Request<Incoming>, SocketAddr, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let mut connections = JoinSet::new();
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "listener has no local address");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut backoff = Duration::from_millis(10);
    let (mut failures, mut last_report) = (0u64, Instant::now());
    loop {
        // reap finished connections so the set holds only open ones
        while connections.try_join_next().is_some() {}
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => {
                    backoff = Duration::from_millis(10);
                    x
                }
                Err(e) => {
                    // e.g. EMFILE: back off instead of spinning, and say so once a second
                    failures += 1;
                    if last_report.elapsed() >= Duration::from_secs(1) {
                        tracing::warn!(error = %e, failures, %local, "accept failed; backing off");
                        (failures, last_report) = (0, Instant::now());
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // a TLS client would read a plain answer as a broken handshake: just close
            if tls.is_none() {
                connections.spawn(refuse(stream));
            }
            continue;
        };
        let handler = handler.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            match tls {
                None => connection(stream, remote, local, handler, stop, limits, false).await,
                Some(tls) => {
                    let limit = limits.header_read_timeout;
                    if let Some(stream) = tls.accept(stream, remote, limit).await {
                        connection(stream, remote, local, handler, stop, limits, true).await
                    }
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    let all_closed = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, all_closed).await.is_err() {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "requests still open after the grace period; closing them"
        );
    }
    connections.shutdown().await;
}

/// A connection over the limit: `503` and close, without reading its request.
async fn refuse(mut stream: TcpStream) {
    const ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 38\r\n\r\ntoo many connections; try again later\n";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(ANSWER).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Serve one connection until it ends, `stop` fires (then gracefully), or it sits idle;
/// `secure`: it came over TLS (its requests carry [`Https`]).
async fn connection<S, H, F>(
    stream: S,
    remote: SocketAddr,
    local: SocketAddr,
    handler: H,
    stop: CancellationToken,
    limits: Limits,
    secure: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>, SocketAddr, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let io = Watched {
        inner: stream,
        activity: activity.clone(),
    };
    let in_flight = activity.clone();
    let svc = service_fn(move |mut req: Request<Incoming>| {
        in_flight.requests.fetch_add(1, Ordering::Relaxed);
        if secure {
            req.extensions_mut().insert(Https);
        }
        let fut = handler(req, remote, local);
        let done = in_flight.clone();
        async move {
            let resp = fut.await;
            done.requests.fetch_sub(1, Ordering::Relaxed);
            done.touch();
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        // a client may shut its write side once the request is sent; it still gets the answer
        .half_close(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = activity.idle_for(limits.idle_timeout), if !closing => {
                closing = true;
                tracing::debug!(%remote, "closing an idle connection");
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// When a connection last moved a byte or answered, and how many requests it is serving.
struct Activity {
    started: Instant,
    last_ms: AtomicU64,
    requests: AtomicUsize,
}

impl Default for Activity {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            requests: AtomicUsize::new(0),
        }
    }
}

impl Activity {
    fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Resolves once no request is in flight and nothing moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = self.started.elapsed().saturating_sub(last);
            if quiet >= limit && self.requests.load(Ordering::Relaxed) == 0 {
                return;
            }
            tokio::time::sleep(limit.saturating_sub(quiet).max(Duration::from_millis(10))).await;
        }
    }
}

/// A stream that records when it last moved a byte.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
