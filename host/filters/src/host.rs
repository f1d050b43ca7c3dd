//! The host side of the WIT imports: what a filter may ask, and nothing more. The WASI context
//! grants no directories, no environment, no arguments and no network; stdout and stderr go to the
//! gateway's log, tagged with the slot.
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use sluice_cluster::{Cluster, Health};

use crate::bindings::sluice::filter::{cache, cluster, log, query, types};
use crate::cache::Namespace;

/// Per-instance state of one filter.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limits: MemoryWatch,
    slot: Arc<str>,
    cluster: Arc<Cluster>,
    cache: Namespace,
    /// The user of the query being routed (for `user-queued-queries`); set per call.
    pub(super) user: Option<String>,
    /// The queue priority the filter set during this call.
    pub(super) priority: Option<i32>,
}

impl HostState {
    /// Fresh state for a new instance of `slot`.
    pub fn new(
        slot: Arc<str>,
        cluster: Arc<Cluster>,
        cache: Namespace,
        memory_bytes: usize,
    ) -> Self {
        let wasi = WasiCtx::builder()
            .stdout(LogStream {
                slot: slot.clone(),
                stream: "stdout",
            })
            .stderr(LogStream {
                slot: slot.clone(),
                stream: "stderr",
            })
            .allow_ip_name_lookup(false)
            .allow_tcp(false)
            .allow_udp(false)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(memory_bytes)
            .instances(32)
            .tables(32)
            .memories(4)
            .trap_on_grow_failure(true)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limits: MemoryWatch {
                limits,
                linear_bytes: 0,
            },
            slot,
            cluster,
            cache,
            user: None,
            priority: None,
        }
    }
}

/// The store's limits, and how much linear memory its instance grew to (what an instance of the
/// filter costs: an interpreter's heap, a Rust filter's few pages).
pub struct MemoryWatch {
    limits: StoreLimits,
    /// Linear memory the instance's memories were allowed to grow to, together.
    pub(super) linear_bytes: usize,
}

impl ResourceLimiter for MemoryWatch {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.linear_bytes += desired - current;
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl query::Host for HostState {
    fn set_priority(&mut self, priority: i32) {
        self.priority = Some(priority);
    }
}

impl cache::Host for HostState {
    async fn get(&mut self, key: String) -> Option<Vec<u8>> {
        self.cache.get(&key).await
    }
    async fn get_many(&mut self, keys: Vec<String>) -> Vec<Option<Vec<u8>>> {
        self.cache.get_many(&keys).await
    }
    async fn set(&mut self, key: String, value: Vec<u8>, ttl_seconds: u32) {
        if !self.cache.set(&key, &value, ttl_seconds).await {
            tracing::warn!(
                slot = &*self.slot,
                key_len = key.len(),
                value_len = value.len(),
                "filter cache write refused: key or value too large"
            );
        }
    }
    async fn delete(&mut self, key: String) {
        self.cache.delete(&key).await
    }
    async fn increment(&mut self, key: String, delta: i64, ttl_seconds: u32) -> i64 {
        self.cache.increment(&key, delta, ttl_seconds).await
    }
}

impl cluster::Host for HostState {
    fn backends(&mut self, group: String) -> Vec<types::Backend> {
        let user = self.user.as_deref();
        self.cluster
            .backends()
            .iter()
            .filter(|b| b.group() == group)
            .map(|b| {
                let s = b.status();
                types::Backend {
                    name: b.name().to_string(),
                    routing_group: b.group().to_string(),
                    health: match s.health {
                        Health::Healthy => types::Health::Healthy,
                        Health::Unhealthy => types::Health::Unhealthy,
                        Health::Pending => types::Health::Pending,
                    },
                    active: b.accepts_new(),
                    running_queries: s.running_queries,
                    queued_queries: s.queued_queries,
                    user_queued_queries: user
                        .and_then(|u| s.user_queued.get(u).copied())
                        .unwrap_or(0),
                }
            })
            .collect()
    }
    fn groups(&mut self) -> Vec<String> {
        self.cluster.groups()
    }
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        let slot = &*self.slot;
        let message = truncate(&message, 2048);
        match level {
            log::Level::Trace => tracing::trace!(slot, "{message}"),
            log::Level::Debug => tracing::debug!(slot, "{message}"),
            log::Level::Info => tracing::info!(slot, "{message}"),
            log::Level::Warn => tracing::warn!(slot, "{message}"),
            log::Level::Error => tracing::error!(slot, "{message}"),
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A filter's stdout or stderr: each write becomes a log line.
struct LogStream {
    slot: Arc<str>,
    stream: &'static str,
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LogWriter {
            slot: self.slot.clone(),
            stream: self.stream,
        })
    }
}

struct LogWriter {
    slot: Arc<str>,
    stream: &'static str,
}

impl tokio::io::AsyncWrite for LogWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let text = String::from_utf8_lossy(buf);
        let text = text.trim_end();
        if !text.is_empty() {
            tracing::info!(
                slot = &*self.slot,
                stream = self.stream,
                "filter output: {}",
                truncate(text, 2048)
            );
        }
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
