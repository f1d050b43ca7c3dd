//! The cache stack for query state: L1 in process (moka), L2 shared (Valkey/Redis), L3 (SQL, from
//! `sluice-store`), and for query ids a search of the backends as last resort.
//!
//! # Layout
//!
//! | module | one job |
//! | --- | --- |
//! | [`tiered`] | [`TieredCache`]: any key through the tiers; filters reach it (namespaced) through the WIT `cache` interface |
//! | [`location`] | [`QueryLocation`]: the owner of one query as the tiers store it, and its key ([`query_key`]) |
//! | [`locator`] | [`QueryLocator`]: query id → [`QueryLocation`], with the search and a negative cache |
//! | `query_l1` | the locator's own L1: query locations packed small (interned names, inline ids) |
//! | [`invalidate`] | a delete announced on Valkey drops the key from every instance's L1 |
//! | [`l2_redis`] | [`l2_redis::L2`]: the shared tier, with a time limit per operation and a health flag |
//! | [`l2_client`] | a server's URL and TLS material as a client; [`l2_client::L2Error`] |
//! | [`l2_conn`] | [`l2_conn::Source`]: standalone, Cluster or Sentinel; [`l2_conn::Conn`], a connection of any of them |
//! | [`search`] | [`search::BackendSearch`]: ask every backend `GET /v1/query/{id}` |
//! | [`pubsub`] | [`pubsub::listen`]: stay subscribed to a channel, reconnecting, for fleet announcements |
//! | [`metrics`] | hits, misses, errors and latency per tier, for `/metrics` |
#![forbid(unsafe_code)]

pub mod invalidate;
pub mod l2_client;
pub mod l2_conn;
pub mod l2_redis;
pub mod location;
pub mod locator;
pub mod metrics;
pub mod pubsub;
mod query_l1;
pub mod search;
pub mod tiered;

pub use location::{query_key, QueryLocation};
pub use locator::QueryLocator;
pub use tiered::TieredCache;
