//! The relay's keep-alive connections: per peer address a bucket of idle connections, newest
//! first. A pool belongs to one worker (per-core serving) or to the whole process; its locks are
//! held for a push or a pop only, never across an await.
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::net::TcpStream;

/// Bytes reserved for reading a response at a time.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// One open connection to a backend and the bytes read from it that are not consumed yet.
pub(crate) struct Conn {
    pub(crate) stream: TcpStream,
    pub(crate) buf: BytesMut,
}

impl Conn {
    /// Open a connection to `authority` (port 80 when it names none).
    pub(crate) async fn open(
        authority: &http::uri::Authority,
        timeout: Option<Duration>,
        keepalive: Option<Duration>,
    ) -> io::Result<Self> {
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let connect = TcpStream::connect((host, authority.port_u16().unwrap_or(80)));
        let stream = match timeout {
            Some(t) => tokio::time::timeout(t, connect).await.map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect timed out after {} ms", t.as_millis()),
                )
            })??,
            None => connect.await?,
        };
        stream.set_nodelay(true)?;
        if let Some(k) = keepalive {
            let sock = socket2::SockRef::from(&stream);
            sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(k))?;
        }
        Ok(Self {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
        })
    }

    /// Whether the peer has not closed the connection nor sent anything unasked (a
    /// non-blocking read that finds nothing to read).
    pub(crate) fn is_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// The idle connections to one peer.
pub(crate) struct Bucket {
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Bucket {
    /// The most recently used idle connection that has not been idle too long.
    pub(crate) fn take(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(i) = idle.pop() {
            if i.since.elapsed() < self.idle_timeout {
                return Some(i.conn);
            }
            // the newest is too old: so is every other one
            idle.clear();
        }
        None
    }

    /// Keep `conn` for the next request, unless the bucket is full.
    pub(crate) fn put(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < self.max_idle {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Idle connections held.
    pub(crate) fn len(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Buckets by peer address (a backend's URL authority).
pub(crate) struct Pool {
    buckets: Mutex<HashMap<Box<str>, Arc<Bucket>>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Pool {
    pub(crate) fn new(max_idle: usize, idle_timeout: Duration) -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
            max_idle,
            idle_timeout,
        }
    }

    /// The bucket of `authority`, made on first use.
    pub(crate) fn bucket(&self, authority: &str) -> Arc<Bucket> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = buckets.get(authority) {
            return b.clone();
        }
        let b = Arc::new(Bucket {
            idle: Mutex::new(Vec::new()),
            max_idle: self.max_idle,
            idle_timeout: self.idle_timeout,
        });
        buckets.insert(authority.into(), b.clone());
        b
    }
}
