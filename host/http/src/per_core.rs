//! Thread-per-core serving: one current-thread tokio runtime per worker thread, each accepting
//! on its own listener socket (`SO_REUSEPORT`: the kernel spreads connections over them) and
//! answering with its own handler, so a connection's accept, reads, forward and writes stay on
//! one thread — no wake-up crosses to another worker.
//!
//! A listener bound without `SO_REUSEPORT` (a test's, or one handed over by a supervisor) is
//! shared instead: each worker accepts on a duplicate of its descriptor.
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::serve::{serve_with_tls, Limits};
use crate::tls_server::ServerTls;
use crate::Body;

/// Bind `addr` with `SO_REUSEPORT`, so that [`listeners`] can add one socket per worker.
pub fn bind_reuse_port(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// `workers` listener sockets accepting what `first` accepts: new `SO_REUSEPORT` sockets on its
/// address when it has that option, else duplicates of its descriptor.
pub fn listeners(
    first: std::net::TcpListener,
    workers: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    let addr = first.local_addr()?;
    let reuse = SockRef::from(&first).reuse_port().unwrap_or(false);
    let mut out = Vec::with_capacity(workers.max(1));
    for _ in 1..workers.max(1) {
        out.push(match reuse {
            true => bind_reuse_port(addr)?,
            false => first.try_clone()?,
        });
    }
    out.insert(0, first);
    Ok(out)
}

/// The number of workers to run when none is configured: one per core this process may use.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Serve each of `listeners` on a thread of its own (a current-thread runtime), over TLS when
/// `tls` is given, with the handler
/// `make_handler(i)` gives worker `i`; `limits.max_connections` is shared out between them. The
/// returned future ends when every worker has stopped (after `stop`, and `grace`).
pub fn serve_per_core<M, H, F>(
    listeners: Vec<std::net::TcpListener>,
    tls: Option<ServerTls>,
    make_handler: M,
    stop: CancellationToken,
    grace: Duration,
    limits: Limits,
) -> io::Result<impl Future<Output = ()> + Send + 'static>
where
    M: Fn(usize) -> H,
    H: Fn(Request<Incoming>, SocketAddr, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let n = listeners.len().max(1);
    let limits = Limits {
        max_connections: limits.max_connections.div_ceil(n).max(1),
        ..limits
    };
    let mut finished = Vec::with_capacity(n);
    for (i, listener) in listeners.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handler = make_handler(i);
        let (stop, tls) = (stop.clone(), tls.clone());
        let (done, finished_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("sluice-worker-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(l) => serve_with_tls(l, tls, handler, stop, grace, limits).await,
                        Err(e) => tracing::error!(worker = i, error = %e, "worker cannot listen"),
                    }
                });
                // tasks the worker's requests left behind end with its runtime
                drop(runtime);
                let _ = done.send(());
            })?;
        finished.push(finished_rx);
    }
    Ok(async move {
        for f in finished {
            let _ = f.await;
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::os::fd::AsRawFd;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::full_body;

    /// One request on a new connection; the body of the answer.
    async fn ask(addr: SocketAddr) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out.rsplit("\r\n\r\n").next().unwrap().to_string()
    }

    /// Workers answering with the name of the thread that serves them.
    /// `reuse_port`: whether every worker's socket must have `SO_REUSEPORT` (its own socket) or
    /// none may (duplicates of one).
    fn start(
        first: std::net::TcpListener,
        workers: usize,
        reuse_port: bool,
        stop: CancellationToken,
    ) -> impl Future<Output = ()> {
        let listeners = listeners(first, workers).unwrap();
        assert_eq!(listeners.len(), workers);
        // own sockets or duplicates of one: count the kernel sockets behind the descriptors
        let sockets: BTreeSet<_> = listeners
            .iter()
            .map(|l| {
                assert_eq!(SockRef::from(l).reuse_port().unwrap(), reuse_port);
                std::fs::read_link(format!("/proc/self/fd/{}", l.as_raw_fd())).unwrap()
            })
            .collect();
        assert_eq!(sockets.len(), if reuse_port { workers } else { 1 });
        serve_per_core(
            listeners,
            None,
            |_| {
                |_req, _remote, _local| async {
                    let name = std::thread::current().name().unwrap_or("?").to_string();
                    Response::new(full_body(name))
                }
            },
            stop,
            Duration::from_secs(1),
            Limits::default(),
        )
        .unwrap()
    }

    /// Stop the workers: they all end, and no socket listens on `addr` any more.
    async fn stop_and_check_closed(
        stop: CancellationToken,
        all: impl Future<Output = ()>,
        addr: SocketAddr,
    ) {
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .expect("every worker stops");
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "no socket listens"
        );
    }

    #[tokio::test]
    async fn reuse_port_sockets_spread_connections_over_the_workers() {
        let first = bind_reuse_port("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let stop = CancellationToken::new();
        let all = start(first, 2, true, stop.clone());
        let mut seen = BTreeSet::new();
        // the kernel hashes each connection's ports: 64 all on one socket is a 2^-63 chance
        for _ in 0..64 {
            seen.insert(ask(addr).await);
        }
        assert_eq!(
            seen,
            BTreeSet::from(["sluice-worker-0".to_string(), "sluice-worker-1".to_string()])
        );
        stop_and_check_closed(stop, all, addr).await;
    }

    #[tokio::test]
    async fn a_listener_without_reuse_port_is_shared_by_the_workers() {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        first.set_nonblocking(true).unwrap();
        let addr = first.local_addr().unwrap();
        let stop = CancellationToken::new();
        let all = start(first, 3, false, stop.clone());
        for _ in 0..16 {
            assert!(ask(addr).await.starts_with("sluice-worker-"));
        }
        stop_and_check_closed(stop, all, addr).await;
    }
}
