//! One loaded filter: a compiled component, its `InstancePre`, and a pool of instances whose
//! `init` already ran. Every call runs under the slot's memory limit and an epoch deadline; an
//! instance that trapped (or timed out, or ran out of memory) is thrown away, never reused.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::Store;

use sluice_cluster::Cluster;
use sluice_config::FiltersConfig;
use sluice_routing::{Decision, QueryRequest};

use crate::bindings::{Router as RouterBindings, RouterPre};
use crate::cache::{FilterCache, Namespace};
use crate::engine::{self, TICK};
use crate::error::{FilterError, Step, SwapError};
use crate::host::HostState;

struct Instance {
    store: Store<HostState>,
    router: RouterBindings,
}

/// Counters of one slot.
#[derive(Debug, Default, Serialize)]
pub struct SlotStats {
    pub calls: AtomicU64,
    pub traps: AtomicU64,
    pub timeouts: AtomicU64,
    pub out_of_memory: AtomicU64,
    pub invalid_decisions: AtomicU64,
    pub instances_created: AtomicU64,
    /// The most linear memory one instance grew to (bytes).
    pub instance_memory_bytes: AtomicU64,
    /// Decisions that named a backend.
    pub chose_backend: AtomicU64,
    /// Decisions that narrowed the query to a routing group.
    pub chose_group: AtomicU64,
    /// Decisions that left the query as it was.
    pub passed: AtomicU64,
    /// Decisions that rejected the query.
    pub rejected: AtomicU64,
    /// Failures (a trap, timeout, out of memory or invalid decision) that ended the chain with
    /// `routing.on_filter_error`.
    pub fallbacks: AtomicU64,
}

/// Limits applied to every call of a slot.
#[derive(Debug, Clone)]
pub struct Limits {
    pub call_timeout: Duration,
    pub init_timeout: Duration,
    pub memory_bytes: usize,
    pub pool_size: usize,
}

impl Limits {
    pub fn from_config(c: &FiltersConfig) -> Self {
        Self {
            call_timeout: Duration::from_millis(c.timeout_ms),
            init_timeout: Duration::from_millis(c.init_timeout_ms),
            memory_bytes: (c.memory_limit_mb << 20) as usize,
            pool_size: c.pool_size,
        }
    }

    /// These limits with a slot's own where it gives them.
    pub fn with(&self, own: &sluice_config::SlotLimits) -> Self {
        let ms = |v: Option<u64>, d: Duration| v.map_or(d, Duration::from_millis);
        Self {
            call_timeout: ms(own.timeout_ms, self.call_timeout),
            init_timeout: ms(own.init_timeout_ms, self.init_timeout),
            memory_bytes: own
                .memory_limit_mb
                .map_or(self.memory_bytes, |mb| (mb << 20) as usize),
            pool_size: own.pool_size.unwrap_or(self.pool_size),
        }
    }
}

/// What loading a filter needs besides its bytes.
#[derive(Clone)]
pub struct LoadContext {
    /// The cluster view filters read.
    pub cluster: Arc<Cluster>,
    /// The cache behind every slot's namespace.
    pub cache: Arc<FilterCache>,
    /// Limits per call.
    pub limits: Limits,
    /// On-disk compiled-module cache, if any.
    pub disk_cache: Option<std::path::PathBuf>,
    /// Slots whose limits differ from `limits` (`routing.chain[].limits`).
    pub slot_limits: std::collections::HashMap<String, Limits>,
}

impl LoadContext {
    /// The limits of `slot`.
    pub fn limits_for(&self, slot: &str) -> Limits {
        self.slot_limits
            .get(slot)
            .cloned()
            .unwrap_or_else(|| self.limits.clone())
    }
}

/// A filter ready to route.
pub struct LoadedFilter {
    /// Slot name.
    pub slot: Arc<str>,
    /// sha256 of the component bytes.
    pub sha256: Arc<str>,
    /// Where it came from (`builtin:…` or a path).
    pub module: String,
    /// When it was loaded.
    pub loaded_at: std::time::SystemTime,
    config_json: String,
    bytes: bytes::Bytes,
    pre: RouterPre<HostState>,
    cluster: Arc<Cluster>,
    cache: Namespace,
    limits: Limits,
    idle: Mutex<Vec<Instance>>,
    wants_sql_objects: AtomicBool,
    /// The stored version this is (0: from the config file, not stored).
    pub version: std::sync::atomic::AtomicI64,
    /// Counters.
    pub stats: SlotStats,
}

fn ticks(d: Duration) -> u64 {
    (d.as_micros() / TICK.as_micros()).max(1) as u64
}

impl LoadedFilter {
    /// Compile, link against the world, instantiate once and run `init`: any failure is an error
    /// that says which step failed.
    pub async fn load(
        env: &LoadContext,
        slot: &str,
        module: &str,
        bytes: &[u8],
        config_json: String,
    ) -> Result<Arc<LoadedFilter>, SwapError> {
        let link = |e: wasmtime::Error| SwapError::new(Step::Link, format!("{e:#}"));
        let world = |e: wasmtime::Error| {
            SwapError::new(
                Step::Link,
                format!("does not match the sluice:filter/router world: {e:#}"),
            )
        };
        let (sha256, component, source) = engine::compile(bytes, env.disk_cache.as_deref())
            .map_err(|e| SwapError::new(Step::Compile, e.to_string()))?;
        let mut linker: Linker<HostState> = Linker::new(engine::engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
        RouterBindings::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(link)?;
        let pre = linker.instantiate_pre(&component).map_err(world)?;
        let pre = RouterPre::new(pre).map_err(world)?;
        let filter = Arc::new(LoadedFilter {
            slot: slot.into(),
            sha256,
            module: module.to_string(),
            loaded_at: std::time::SystemTime::now(),
            config_json,
            bytes: bytes::Bytes::copy_from_slice(bytes),
            pre,
            cache: env.cache.namespace(slot),
            cluster: env.cluster.clone(),
            limits: env.limits_for(slot),
            idle: Mutex::new(Vec::new()),
            wants_sql_objects: AtomicBool::new(true),
            version: std::sync::atomic::AtomicI64::new(0),
            stats: SlotStats::default(),
        });
        // init runs now, so a config the filter refuses is a load error
        let first = filter
            .instantiate()
            .await
            .map_err(|e| SwapError::new(Step::Init, e.to_string()))?;
        if filter.limits.pool_size > 0 {
            filter.idle.lock().unwrap().push(first);
        }
        tracing::info!(slot, module, sha256 = &*filter.sha256, compiled = ?source, "filter loaded");
        Ok(filter)
    }

    /// The component bytes (kept so a config-only change can reload the same module).
    pub fn bytes(&self) -> &bytes::Bytes {
        &self.bytes
    }

    /// The configuration `init` received, as JSON.
    pub fn config_json(&self) -> &str {
        &self.config_json
    }

    async fn instantiate(&self) -> Result<Instance, FilterError> {
        let state = HostState::new(
            self.slot.clone(),
            self.cluster.clone(),
            self.cache.clone(),
            self.limits.memory_bytes,
        );
        let mut store = Store::new(engine::engine(), state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks(self.limits.init_timeout));
        let started = Instant::now();
        let router = self.pre.instantiate_async(&mut store).await.map_err(|e| {
            classify(
                &self.slot,
                "instantiate",
                e,
                started,
                self.limits.init_timeout,
            )
        })?;
        match router.call_init(&mut store, &self.config_json).await {
            Ok(Ok(info)) => self
                .wants_sql_objects
                .store(info.wants_sql_objects, Ordering::Relaxed),
            Ok(Err(msg)) => {
                return Err(FilterError::Init {
                    slot: self.slot.to_string(),
                    message: msg,
                })
            }
            Err(e) => {
                return Err(classify(
                    &self.slot,
                    "init",
                    e,
                    started,
                    self.limits.init_timeout,
                ))
            }
        }
        self.stats.instances_created.fetch_add(1, Ordering::Relaxed);
        self.note_memory(&store);
        Ok(Instance { store, router })
    }

    /// Keep the most linear memory an instance of this slot has grown to.
    fn note_memory(&self, store: &Store<HostState>) {
        let bytes = store.data().limits.linear_bytes as u64;
        self.stats
            .instance_memory_bytes
            .fetch_max(bytes, Ordering::Relaxed);
    }

    /// Run `route` for one query in routing group `group`.
    pub async fn route(&self, req: &QueryRequest, group: &str) -> Result<Decision, FilterError> {
        self.route_and_prioritise(req, group).await.map(|(d, _)| d)
    }

    /// Run `route` for one query in routing group `group`: the decision, and the queue
    /// priority the filter set, if it did.
    pub async fn route_and_prioritise(
        &self,
        req: &QueryRequest,
        group: &str,
    ) -> Result<(Decision, Option<i32>), FilterError> {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let pooled = self.idle.lock().unwrap().pop();
        let mut inst = match pooled {
            Some(i) => i,
            None => self.instantiate().await.inspect_err(|e| self.count(e))?,
        };
        inst.store.data_mut().user = req.user.clone();
        inst.store.data_mut().priority = None;
        inst.store
            .set_epoch_deadline(ticks(self.limits.call_timeout));
        let wit_req = to_wit(req);
        let started = Instant::now();
        match inst
            .router
            .call_route(&mut inst.store, &wit_req, group)
            .await
        {
            Ok(decision) => {
                inst.store.data_mut().user = None;
                let priority = inst.store.data_mut().priority.take();
                self.note_memory(&inst.store);
                // pool_size 0: a fresh instance (and init) for every call
                let mut idle = self.idle.lock().unwrap();
                if idle.len() < self.limits.pool_size {
                    idle.push(inst);
                }
                Ok((from_wit(decision), priority))
            }
            Err(e) => {
                // the instance may be in any state after a trap: drop it
                let err = classify(&self.slot, "route", e, started, self.limits.call_timeout);
                self.count(&err);
                Err(err)
            }
        }
    }

    fn count(&self, e: &FilterError) {
        let counter = match e {
            FilterError::Timeout { .. } => &self.stats.timeouts,
            FilterError::OutOfMemory { .. } => &self.stats.out_of_memory,
            _ => &self.stats.traps,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether `route` reads the catalogs/schemas/tables (as `init` said).
    pub fn wants_sql_objects(&self) -> bool {
        self.wants_sql_objects.load(Ordering::Relaxed)
    }

    /// Instances ready in the pool.
    pub fn idle_instances(&self) -> usize {
        self.idle.lock().unwrap().len()
    }
}

fn classify(
    slot: &str,
    step: &'static str,
    e: wasmtime::Error,
    started: Instant,
    limit: Duration,
) -> FilterError {
    let slot = slot.to_string();
    if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
        return FilterError::Timeout {
            slot,
            step,
            limit_ms: limit.as_millis() as u64,
        };
    }
    let text = format!("{e:#}");
    if text.contains("forcing trap when growing memory") || text.contains("memory allocation") {
        return FilterError::OutOfMemory { slot, step };
    }
    let _ = started;
    FilterError::Trap {
        slot,
        step,
        message: text,
    }
}

fn to_wit(req: &QueryRequest) -> crate::bindings::QueryRequest {
    crate::bindings::QueryRequest {
        user: req.user.clone(),
        source: req.source.clone(),
        client_tags: req.client_tags.clone(),
        routing_group: req.routing_group.clone(),
        headers: req.headers.clone(),
        query_text: req.query_text.clone(),
        query_text_truncated: req.query_text_truncated,
        catalogs: req.catalogs.clone(),
        schemas: req.schemas.clone(),
        tables: req.tables.clone(),
    }
}

fn from_wit(d: crate::bindings::Decision) -> Decision {
    use crate::bindings::Decision as W;
    match d {
        W::RouteTo(b) => Decision::RouteTo(b),
        W::UseGroup(g) => Decision::UseGroup(g),
        W::Reject(r) => Decision::Reject {
            status: r.status,
            message: r.message,
        },
        W::Pass => Decision::Pass,
    }
}
