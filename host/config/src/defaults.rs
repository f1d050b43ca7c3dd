//! Every default value of a plain type, in one place (serde calls these by name). The two whose
//! type is the config's own stand beside that type: `health.stats` (`StatsSource`'s `Default`)
//! and `routing.chain` (`routing::default_chain`), so this module depends on no other.

use std::net::SocketAddr;
pub fn listen() -> SocketAddr {
    "0.0.0.0:8080".parse().unwrap()
}
pub fn admin_listen() -> SocketAddr {
    "127.0.0.1:8081".parse().unwrap()
}
pub fn group() -> String {
    "adhoc".into()
}
pub fn yes() -> bool {
    true
}
pub fn l1_capacity() -> u64 {
    100_000
}
pub fn l1_ttl() -> u64 {
    1800
}
pub fn health_interval() -> u64 {
    2000
}
pub fn health_timeout() -> u64 {
    1000
}
pub fn health_user() -> String {
    "sluice".into()
}
pub fn metric_running() -> String {
    "trino_execution_name_QueryManager_RunningQueries".into()
}
pub fn metric_queued() -> String {
    "trino_execution_name_QueryManager_QueuedQueries".into()
}
pub fn connect_timeout() -> u64 {
    2000
}
pub fn response_timeout() -> u64 {
    120_000
}
pub fn max_statement_bytes() -> usize {
    16 << 20
}
pub fn pool_max_idle() -> usize {
    64
}
pub fn shutdown_grace() -> u64 {
    30_000
}
pub fn log_level() -> String {
    "info".into()
}
pub fn store_url() -> String {
    "sqlite://sluice.db".into()
}
pub fn retention_days() -> u64 {
    7
}
pub fn queue_capacity() -> usize {
    100_000
}
pub fn batch_size() -> usize {
    500
}
pub fn flush_interval() -> u64 {
    50
}
pub fn store_timeout() -> u64 {
    500
}
pub fn store_health() -> u64 {
    1000
}
pub fn valkey_url() -> String {
    "redis://127.0.0.1:6379/0".into()
}
pub fn valkey_ttl() -> u64 {
    86_400
}
pub fn valkey_timeout() -> u64 {
    50
}
pub fn valkey_health() -> u64 {
    1000
}
pub fn sentinel_master() -> String {
    "mymaster".into()
}
pub fn valkey_pool() -> usize {
    2
}
pub fn search_timeout() -> u64 {
    1000
}
pub fn negative_ttl() -> u64 {
    5000
}
pub fn filter_timeout() -> u64 {
    50
}
pub fn filter_init_timeout() -> u64 {
    2000
}
pub fn filter_memory() -> u64 {
    32
}
pub fn filter_pool() -> usize {
    16
}
pub fn filter_poll() -> u64 {
    5000
}
pub fn filter_channel() -> String {
    "sluice:filters".into()
}
pub fn backends_poll() -> u64 {
    1000
}
pub fn backends_channel() -> String {
    "sluice:backends".into()
}
pub fn login_cookie_ttl() -> u64 {
    3600
}
pub fn login_paths() -> Vec<String> {
    ["/oauth2", "/ui/login", "/ui/logout", "/ui/api/login"]
        .map(String::from)
        .to_vec()
}
pub fn header_read_timeout() -> u64 {
    10_000
}
pub fn body_timeout() -> u64 {
    60_000
}
pub fn idle_timeout() -> u64 {
    75_000
}
pub fn max_connections() -> usize {
    10_000
}
pub fn admin_max_connections() -> usize {
    256
}
pub fn statement_memory() -> usize {
    256 << 20
}
pub fn service_name() -> String {
    "sluice".into()
}
pub fn sample_ratio() -> f64 {
    1.0
}
pub fn otlp_timeout() -> u64 {
    10_000
}

pub fn console_session_ttl() -> u64 {
    8 * 3600
}

pub(crate) fn tg_schema() -> String {
    "sluice".into()
}

pub(crate) fn tg_poll() -> u64 {
    5000
}

pub(crate) fn external_timeout() -> u64 {
    1000
}
