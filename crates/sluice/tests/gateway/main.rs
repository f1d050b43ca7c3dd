//! Gateway integration tests: real fake clusters and a real gateway on ephemeral loopback ports.
mod admin;
mod backends;
mod boundary;
mod cache;
mod filters;
mod fleet;
mod groups;
mod health;
mod history;
mod l2_modes;
mod limits;
mod per_core;
mod proxying;
mod reload;
mod shutdown;
mod stickiness;
mod tls;
