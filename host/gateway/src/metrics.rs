//! Whole-gateway metrics read at scrape time: each backend's health, state, running and queued
//! queries; each filter slot's calls, decisions, failures and fallbacks; the shared tiers'
//! health and L3's write queue; the fleet's convergence (computed by a task, since reading it
//! takes a query). Request, cache and TLS metrics are counted where they happen.
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use sluice_cache::l2_redis::L2;
use sluice_cluster::{Cluster, Health};
use sluice_filters::fleet::Fleet;
use sluice_filters::FilterChain;
use sluice_store::L3;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the collector reads.
pub struct GatewayCollector {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) chain: Option<Arc<FilterChain>>,
    pub(crate) l2: Option<Arc<L2>>,
    pub(crate) l3: Option<Arc<L3>>,
    /// `sluice_fleet_converged` and `sluice_fleet_instances` (-1: not known yet).
    pub(crate) fleet: Arc<FleetGauges>,
    /// The external routing service's calls, when one is configured.
    pub(crate) external: Option<Arc<sluice_trino_gateway::external::ExternalStats>>,
}

impl std::fmt::Debug for GatewayCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayCollector").finish_non_exhaustive()
    }
}

/// The fleet's convergence as last read.
#[derive(Debug)]
pub struct FleetGauges {
    converged: AtomicI64,
    instances: AtomicI64,
}

impl Default for FleetGauges {
    fn default() -> Self {
        Self {
            converged: AtomicI64::new(-1),
            instances: AtomicI64::new(-1),
        }
    }
}

/// Read the fleet's view every `every` until `stop`, for the gauges.
pub fn follow_fleet(
    fleet: Arc<Fleet>,
    l3: Arc<L3>,
    gauges: Arc<FleetGauges>,
    every: Duration,
    tasks: &TaskTracker,
    stop: CancellationToken,
) {
    tasks.spawn(async move {
        loop {
            if let Ok(view) = fleet.view(l3.store(), sluice_store::now_ms()).await {
                gauges
                    .converged
                    .store(view.converged as i64, Ordering::Relaxed);
                gauges
                    .instances
                    .store(view.instances.len() as i64, Ordering::Relaxed);
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
        }
    });
}

/// One family of constant metrics: a row per label set.
fn family<V: Copy, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    rows: &[(&[(&str, &str)], V)],
    metric: impl Fn(V) -> M,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in rows {
        metric(*value).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(&[(&str, &str)], i64)],
) -> std::fmt::Result {
    family(
        encoder,
        (name, help, MetricType::Gauge),
        rows,
        ConstGauge::new,
    )
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(&[(&str, &str)], u64)],
) -> std::fmt::Result {
    family(
        encoder,
        (name, help, MetricType::Counter),
        rows,
        ConstCounter::new,
    )
}

impl Collector for GatewayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let backends = self.cluster.backends();
        let statuses: Vec<_> = backends.iter().map(|b| (b, b.status())).collect();
        let labels: Vec<[(&str, &str); 2]> = statuses
            .iter()
            .map(|(b, _)| [("backend", b.name()), ("group", b.group())])
            .collect();
        let per_backend = |value: &dyn Fn(usize) -> i64| -> Vec<(&[(&str, &str)], i64)> {
            labels
                .iter()
                .enumerate()
                .map(|(i, l)| (&l[..], value(i)))
                .collect()
        };
        gauge(
            &mut encoder,
            "sluice_backend_healthy",
            "1 if the backend's last health check passed",
            &per_backend(&|i| (statuses[i].1.health == Health::Healthy) as i64),
        )?;
        gauge(
            &mut encoder,
            "sluice_backend_running_queries",
            "Running queries the backend reported at its last check",
            &per_backend(&|i| statuses[i].1.running_queries as i64),
        )?;
        gauge(
            &mut encoder,
            "sluice_backend_queued_queries",
            "Queued queries the backend reported at its last check",
            &per_backend(&|i| statuses[i].1.queued_queries as i64),
        )?;
        let states: Vec<[(&str, &str); 3]> = statuses
            .iter()
            .map(|(b, _)| {
                [
                    ("backend", b.name()),
                    ("group", b.group()),
                    ("state", b.state().as_str()),
                ]
            })
            .collect();
        let rows: Vec<_> = states.iter().map(|l| (&l[..], 1)).collect();
        gauge(
            &mut encoder,
            "sluice_backend_state",
            "1 for the backend's state: active, inactive, draining or drained",
            &rows,
        )?;
        self.encode_filters(&mut encoder)?;
        let mut tiers = Vec::new();
        if let Some(l2) = &self.l2 {
            tiers.push(([("tier", "l2")], l2.is_healthy() as i64));
        }
        if let Some(l3) = &self.l3 {
            tiers.push(([("tier", "l3")], l3.is_healthy() as i64));
        }
        let rows: Vec<_> = tiers.iter().map(|(l, v)| (&l[..], *v)).collect();
        gauge(
            &mut encoder,
            "sluice_cache_tier_up",
            "1 if the shared tier is in use (not marked down)",
            &rows,
        )?;
        if let Some(l3) = &self.l3 {
            gauge(
                &mut encoder,
                "sluice_l3_write_queue_depth",
                "History rows and mappings waiting to be written to L3",
                &[(&[], l3.queued() as i64)],
            )?;
            counter(
                &mut encoder,
                "sluice_l3_rows_dropped",
                "Rows L3 could not queue (the queue was full) or write",
                &[(&[], l3.dropped())],
            )?;
            if let Some(mirror) = l3.mirror_name() {
                // sluice_trino_gateway_history_rows_failed on Trino Gateway's database
                counter(
                    &mut encoder,
                    &format!("sluice_{mirror}_history_rows_failed"),
                    "History rows not copied into the database Sluice works beside (Sluice's own table has them)",
                    &[(&[], l3.mirror_failed())],
                )?;
            }
        }
        if let Some(e) = &self.external {
            let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            counter(
                &mut encoder,
                "sluice_external_routing_calls",
                "Calls to the external routing service by result: group (named another group), kept (named none or the query's own), failed (error, time limit, errors answered)",
                &[
                    (&[("result", "group")], n(&e.chose_group)),
                    (&[("result", "kept")], n(&e.kept_group)),
                    (&[("result", "failed")], n(&e.failed)),
                ],
            )?;
        }
        let converged = self.fleet.converged.load(Ordering::Relaxed);
        if converged >= 0 {
            gauge(
                &mut encoder,
                "sluice_fleet_converged",
                "1 if every live instance runs the active version of every filter slot",
                &[(&[], converged)],
            )?;
            gauge(
                &mut encoder,
                "sluice_fleet_instances",
                "Instances reporting their filter versions in L3",
                &[(&[], self.fleet.instances.load(Ordering::Relaxed))],
            )?;
        }
        Ok(())
    }
}

impl GatewayCollector {
    fn encode_filters(&self, encoder: &mut DescriptorEncoder) -> std::fmt::Result {
        let Some(chain) = &self.chain else {
            return Ok(());
        };
        let slots = chain.slots();
        let read = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let mut decisions = Vec::new();
        let mut failures = Vec::new();
        let mut calls = Vec::new();
        let mut fallbacks = Vec::new();
        for f in slots.iter() {
            let s = &f.stats;
            let slot = &*f.slot;
            for (kind, n) in [
                ("backend", read(&s.chose_backend)),
                ("group", read(&s.chose_group)),
                ("pass", read(&s.passed)),
                ("reject", read(&s.rejected)),
                ("invalid", read(&s.invalid_decisions)),
            ] {
                decisions.push(([("slot", slot), ("decision", kind)], n));
            }
            for (reason, n) in [
                ("trap", read(&s.traps)),
                ("timeout", read(&s.timeouts)),
                ("out_of_memory", read(&s.out_of_memory)),
            ] {
                failures.push(([("slot", slot), ("reason", reason)], n));
            }
            calls.push(([("slot", slot)], read(&s.calls)));
            fallbacks.push(([("slot", slot)], read(&s.fallbacks)));
        }
        let rows: Vec<_> = decisions.iter().map(|(l, n)| (&l[..], *n)).collect();
        counter(
            encoder,
            "sluice_filter_decisions",
            "Routing decisions by filter slot and kind (backend, group, pass, reject, invalid)",
            &rows,
        )?;
        let rows: Vec<_> = failures.iter().map(|(l, n)| (&l[..], *n)).collect();
        counter(
            encoder,
            "sluice_filter_failures",
            "Filter calls that failed, by slot and reason (trap, timeout, out_of_memory)",
            &rows,
        )?;
        let rows: Vec<_> = calls.iter().map(|(l, n)| (&l[..], *n)).collect();
        counter(
            encoder,
            "sluice_filter_calls",
            "Filter calls by slot",
            &rows,
        )?;
        let rows: Vec<_> = fallbacks.iter().map(|(l, n)| (&l[..], *n)).collect();
        counter(
            encoder,
            "sluice_filter_fallbacks",
            "Failed decisions that ended the chain with routing.on_filter_error, by slot",
            &rows,
        )
    }
}
