//! Phase 6 of the start: tokens, the reloader, the gateway's metrics, and the admin API (with
//! Trino Gateway's backend API as one of its extensions).
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use sluice_admin::{Admin, Reload};
use sluice_cache::QueryLocator;

use crate::metrics;
use crate::reload::{self, ReloadMetrics, Reloader};
use crate::start::{DataPath, Foundation, Policy, Start, State};
use crate::ConfigSource;

impl Start {
    /// 6. Tokens, the reloader, the gateway's metrics, the admin API (with Trino Gateway's
    ///    backend API as an extension).
    pub(crate) fn control_plane(
        &mut self,
        source: Option<ConfigSource>,
        f: &Foundation,
        s: &State,
        locator: Arc<QueryLocator>,
        p: Policy,
        d: &DataPath,
    ) -> (
        Arc<Admin>,
        Arc<Reloader>,
        Arc<ArcSwap<sluice_config::HealthConfig>>,
    ) {
        let config = &self.config;
        let tokens = Arc::new(sluice_admin::auth::Tokens::new(&config.admin.tokens));
        let health = Arc::new(ArcSwap::from_pointee(config.health.clone()));
        let reload_metrics = ReloadMetrics::default();
        reload_metrics.register(&mut self.registry);
        let reloader = Arc::new(Reloader {
            source,
            applied: std::sync::Mutex::new(config.clone()),
            applied_slots: std::sync::Mutex::new(reload::slot_digests(&config.routing.chain)),
            last: std::sync::Mutex::new(None),
            routing: p.routing.clone(),
            queue: d.queue.clone(),
            tokens: tokens.clone(),
            health: health.clone(),
            backends: s.backends.clone(),
            chain: p.chain.clone(),
            tls: f.proxy_tls.iter().chain(&f.admin_tls).cloned().collect(),
            metrics: reload_metrics,
            turn: tokio::sync::Mutex::new(()),
        });
        let fleet_gauges = Arc::new(metrics::FleetGauges::default());
        if let (Some(fleet), Some(l3)) = (&p.fleet, &s.l3) {
            let every = Duration::from_millis(config.filters.poll_interval_ms.max(1000));
            let gauges = fleet_gauges.clone();
            metrics::follow_fleet(
                fleet.clone(),
                l3.clone(),
                gauges,
                every,
                &self.tasks,
                self.stop.clone(),
            );
        }
        let mut registry = std::mem::take(&mut self.registry);
        registry.register_collector(Box::new(metrics::GatewayCollector {
            cluster: f.cluster.clone(),
            chain: p.chain.clone(),
            l2: s.l2.clone(),
            l3: s.l3.clone(),
            fleet: fleet_gauges,
            external: p.external,
        }));
        let admin = Arc::new(Admin {
            cluster: f.cluster.clone(),
            locator,
            ready: self.ready.clone(),
            chain: p.chain,
            registry: Arc::new(registry),
            tokens,
            fleet: p.fleet,
            backends: s.backends.clone(),
            reload: Some(reloader.clone() as Arc<dyn Reload>),
            sessions: Arc::new(sluice_console::Sessions::new(
                config.admin.console.session_secret.as_deref(),
                Duration::from_secs(config.admin.console.session_ttl_seconds),
            )),
            queue: Some(d.queue.clone()),
            extensions: vec![s.trino_gateway.api.clone()],
        });
        (admin, reloader, health)
    }
}
