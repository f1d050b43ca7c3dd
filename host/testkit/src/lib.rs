//! The test kit: what tests and benchmarks start — fake clusters (the fake coordinator of
//! `sluice-fake-trino`) and a gateway on ephemeral loopback ports, and Redis, PostgreSQL and
//! MariaDB servers a test can kill. A dev-dependency only: the shipping binary never links it.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | [`clusters`] | fake clusters on port 0 and their `backends:` entries; a test [`clusters::config`] |
//! | [`gateway`] | [`Gw`]: a gateway on port 0 with a client for the Trino protocol and the admin API |
//! | [`servers`] | [`RedisServer`], [`PgServer`], temp SQLite files |
//! | [`mariadb`] | [`MariaDbServer`]: a MariaDB server of its own, which a test can stop |
//! | [`redis_topologies`] | a Redis Cluster and a Sentinel setup, whose master a test can kill |
//! | [`tls`] | [`tls::TestCa`]: a private CA issuing certificates as PEM files |
#![forbid(unsafe_code)]

pub mod clusters;
pub mod gateway;
pub mod mariadb;
pub mod redis_topologies;
pub mod servers;
pub mod tls;

pub use clusters::{backend, cluster, cluster_with, config, fake_clusters};
pub use gateway::{
    cache_stats, json, l3_state, owner, send, start_gateway, start_gateway_from, start_query,
    wait_drained, Gw,
};
pub use mariadb::MariaDbServer;
pub use servers::{free_port, temp_sqlite, PgServer, RedisServer, TempSqlite};
pub use sluice_fake_trino::{FakeOptions, FakeTrino};

/// The path of `hostile.wasm`, a filter that misbehaves on purpose (traps, loops, grows memory),
/// built with the builtin filters but not embedded in the binary.
pub const HOSTILE_WASM: &str = sluice_filters::builtin::HOSTILE_TEST_MODULE;
