//! The relay: a lean HTTP/1.1 client for plain-HTTP backends, for requests without a body (a
//! Trino client's follow-up polls, cancels, UI and info requests) and for statements already
//! read whole. The caller writes the request head itself (only the fields it passes on, no
//! header map built); the answer's head is parsed in place and its body read straight off the
//! connection by whoever polls it. No connection task, no channel, no re-encoding: hyper's
//! client does all three per request.
//!
//! A pooled connection the backend has closed meanwhile shows as an error or an end of stream
//! before the first byte of an answer; an idempotent request ([`Relay::send`]: a Trino client
//! may repeat a `nextUri`) is then sent once more on a new connection. A new query
//! ([`Relay::send_once`]) is never sent twice: its pooled connection is checked first instead.
use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::Response;
use tokio::io::AsyncWriteExt;

mod body;
mod pool;
mod response;

pub use body::RelayBody;
pub use response::HeadError;

use pool::{Conn, Pool, READ_CHUNK};

/// Why a relayed request failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// No connection could be opened: nothing reached the backend.
    #[error("{0}")]
    Connect(io::Error),
    /// The connection failed after the request was (perhaps) sent.
    #[error("{0}")]
    Io(io::Error),
    /// The connection closed before an answer began.
    #[error("the backend closed the connection without answering")]
    Closed,
    /// The answer's head is unusable.
    #[error(transparent)]
    Head(#[from] HeadError),
}

/// How the relay connects and pools.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Time limit to open a TCP connection (`None`: the OS's).
    pub connect_timeout: Option<Duration>,
    /// TCP keepalive probes on open connections.
    pub tcp_keepalive: Option<Duration>,
    /// Idle keep-alive connections kept per backend.
    pub max_idle_per_host: usize,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
}

/// A relay with its own connection pool (one per worker under per-core serving).
#[derive(Clone)]
pub struct Relay {
    pool: Arc<Pool>,
    options: RelayOptions,
}

impl Relay {
    /// A relay with an empty pool.
    pub fn new(options: RelayOptions) -> Self {
        Self {
            pool: Arc::new(Pool::new(options.max_idle_per_host, options.idle_timeout)),
            options,
        }
    }

    /// Send `head` (a complete request head, `\r\n\r\n` included, for a request without a body)
    /// to `authority`; `head_request` when its method is `HEAD` (the answer then has no body).
    /// A pooled connection the backend closed meanwhile is dropped and the request sent again.
    /// Returns the answer once its head is read; no time limit is set here.
    pub async fn send(
        &self,
        authority: &http::uri::Authority,
        head: &[u8],
        head_request: bool,
    ) -> Result<Response<RelayBody>, RelayError> {
        self.exchange_on(authority, head, head_request, true).await
    }

    /// Send `request` (a head with its whole body) that must not be sent twice (a new query):
    /// a pooled connection is first checked to be still open (one non-blocking read), and one
    /// that closes before answering is an error, not a retry.
    pub async fn send_once(
        &self,
        authority: &http::uri::Authority,
        request: &[u8],
    ) -> Result<Response<RelayBody>, RelayError> {
        self.exchange_on(authority, request, false, false).await
    }

    /// `request` on a pooled connection, else a new one. A pooled connection found closed
    /// (checked before writing unless the request may be `repeated`, else by the answer that
    /// never began) is dropped and the next one tried.
    async fn exchange_on(
        &self,
        authority: &http::uri::Authority,
        request: &[u8],
        head_request: bool,
        repeated: bool,
    ) -> Result<Response<RelayBody>, RelayError> {
        let bucket = self.pool.bucket(authority.as_str());
        while let Some(mut conn) = bucket.take() {
            if !repeated && !conn.is_open() {
                continue;
            }
            match exchange(&mut conn, request, head_request).await {
                Ok(head) => return Ok(answer(conn, head, bucket)),
                Err(Exchange::Stale) if repeated => continue,
                Err(Exchange::Stale) => return Err(RelayError::Closed),
                Err(Exchange::Failed(e)) => return Err(e),
            }
        }
        let mut conn = self.open(authority).await?;
        match exchange(&mut conn, request, head_request).await {
            Ok(head) => Ok(answer(conn, head, bucket)),
            Err(Exchange::Stale) => Err(RelayError::Closed),
            Err(Exchange::Failed(e)) => Err(e),
        }
    }

    /// A new connection; boxed, as it is rare and its future (name resolution, connect) large.
    async fn open(&self, authority: &http::uri::Authority) -> Result<Conn, RelayError> {
        let (timeout, keepalive) = (self.options.connect_timeout, self.options.tcp_keepalive);
        Box::pin(Conn::open(authority, timeout, keepalive))
            .await
            .map_err(RelayError::Connect)
    }

    /// Idle connections pooled for `authority` (tests).
    pub fn idle(&self, authority: &http::uri::Authority) -> usize {
        self.pool.bucket(authority.as_str()).len()
    }
}

enum Exchange {
    /// Nothing came back before the connection ended: safe to send again elsewhere.
    Stale,
    Failed(RelayError),
}

/// Write the head, read the answer's head.
async fn exchange(
    conn: &mut Conn,
    head: &[u8],
    head_request: bool,
) -> Result<response::Head, Exchange> {
    conn.buf.clear();
    if conn.stream.write_all(head).await.is_err() {
        return Err(Exchange::Stale);
    }
    loop {
        if !conn.buf.is_empty() {
            if let Some(head) = response::parse(&mut conn.buf, head_request)
                .map_err(|e| Exchange::Failed(e.into()))?
            {
                return Ok(head);
            }
        }
        if conn.buf.capacity() - conn.buf.len() < READ_CHUNK / 4 {
            conn.buf.reserve(READ_CHUNK);
        }
        let started = conn.buf.is_empty();
        match tokio::io::AsyncReadExt::read_buf(&mut conn.stream, &mut conn.buf).await {
            Ok(0) if started => return Err(Exchange::Stale),
            Ok(0) => return Err(Exchange::Failed(RelayError::Closed)),
            Ok(_) => {}
            Err(e) if started && is_reset(&e) => return Err(Exchange::Stale),
            Err(e) => return Err(Exchange::Failed(RelayError::Io(e))),
        }
    }
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// The answer: the body whole when the head's read brought all of it (the connection is then
/// pooled at once), else streamed off the connection.
fn answer(mut conn: Conn, head: response::Head, bucket: Arc<pool::Bucket>) -> Response<RelayBody> {
    let response::Head {
        response,
        framing,
        keep_alive,
    } = head;
    let body = match framing {
        response::Framing::Length(n) if conn.buf.len() as u64 >= n => {
            let bytes = conn.buf.split_to(n as usize).freeze();
            if keep_alive && conn.buf.is_empty() {
                bucket.put(conn);
            }
            RelayBody::full(bytes)
        }
        response::Framing::Empty => {
            if keep_alive && conn.buf.is_empty() {
                bucket.put(conn);
            }
            RelayBody::full(bytes::Bytes::new())
        }
        framing => RelayBody::streaming(conn, framing, keep_alive, bucket),
    };
    response.map(|()| body)
}

#[cfg(test)]
mod tests;
