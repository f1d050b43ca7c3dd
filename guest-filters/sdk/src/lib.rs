//! Write a Sluice routing filter as a plain Rust function.
//!
//! ```ignore
//! use sluice_filter_sdk::{export_filter, Ctx, Decision, QueryRequest};
//!
//! fn route(req: &QueryRequest, ctx: &Ctx) -> Decision {
//!     match req.source.as_deref() {
//!         Some("airflow") => Decision::UseGroup("etl".into()),
//!         _ => Decision::Pass,
//!     }
//! }
//!
//! export_filter!(route);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` file is the filter.
//! A filter that needs its configuration names an init function too:
//! `export_filter!(route, init = init)` with `fn init(config_json: &str) -> Result<(), String>`.

extern crate self as sluice_filter_sdk;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "router",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_router",
        default_bindings_module: "sluice_filter_sdk::bindings",
        runtime_path: "sluice_filter_sdk::__wit_bindgen_rt",
    });
}
#[doc(hidden)]
pub use wit_bindgen::rt as __wit_bindgen_rt;

pub use bindings::sluice::filter::log::Level;
pub use bindings::sluice::filter::types::{
    Backend, Decision, Health, InitInfo, QueryRequest, Rejection,
};

use bindings::sluice::filter::{cache, cluster, log, query};

/// What a filter can ask the gateway while it routes one query.
pub struct Ctx {
    group: String,
}

impl Ctx {
    #[doc(hidden)]
    pub fn new(group: String) -> Self {
        Self { group }
    }

    /// The routing group the query is in so far (header, default, or narrowed by earlier filters).
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Backends of `group`, with health, load and this user's queued queries.
    pub fn backends(&self, group: &str) -> Vec<Backend> {
        cluster::backends(group)
    }

    /// Backends of the current group that may receive a query (active and healthy).
    pub fn routable_backends(&self) -> Vec<Backend> {
        cluster::backends(&self.group)
            .into_iter()
            .filter(|b| b.active && b.health == Health::Healthy)
            .collect()
    }

    /// All routing groups.
    pub fn groups(&self) -> Vec<String> {
        cluster::groups()
    }

    /// A value from this filter's cache namespace.
    pub fn cache_get(&self, key: &str) -> Option<Vec<u8>> {
        cache::get(key)
    }

    /// Store a value for `ttl_seconds` in this filter's cache namespace.
    pub fn cache_set(&self, key: &str, value: &[u8], ttl_seconds: u32) {
        cache::set(key, value, ttl_seconds)
    }

    /// Remove a key from this filter's namespace.
    pub fn cache_delete(&self, key: &str) {
        cache::delete(key)
    }

    /// Atomically add `delta` to a counter (created at 0 with `ttl_seconds`); returns the new value.
    pub fn increment(&self, key: &str, delta: i64, ttl_seconds: u32) -> i64 {
        cache::increment(key, delta, ttl_seconds)
    }

    /// Several values in one call.
    pub fn cache_get_many(&self, keys: &[String]) -> Vec<Option<Vec<u8>>> {
        cache::get_many(keys)
    }

    /// A counter's current value (0 when absent).
    pub fn counter(&self, key: &str) -> i64 {
        parse_counter(cache::get(key))
    }

    /// Several counters in one call (0 for each absent one).
    pub fn counters(&self, keys: &[String]) -> Vec<i64> {
        cache::get_many(keys)
            .into_iter()
            .map(parse_counter)
            .collect()
    }

    /// Write a line to the gateway's log.
    pub fn log(&self, level: Level, message: &str) {
        log::log(level, message)
    }

    /// The query's priority in the gateway's queue, should it wait (higher first; the last
    /// filter of the chain to set it wins; otherwise `queue.priorities` decides).
    pub fn set_priority(&self, priority: i32) {
        query::set_priority(priority)
    }
}

fn parse_counter(v: Option<Vec<u8>>) -> i64 {
    v.and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Export a routing function (and optionally an init function) as this component's filter.
///
/// `route: fn(&QueryRequest, &Ctx) -> Decision`; `init: fn(&str) -> Result<InitInfo, String>`
/// receives the slot's configuration as JSON, once per instance, when the filter is loaded.
/// Without an init function the filter takes any config and is handed the SQL objects; with
/// `sql_objects = false` it is not (the gateway then skips parsing the SQL for it).
#[macro_export]
macro_rules! export_filter {
    ($route:path) => {
        $crate::export_filter!($route, init = $crate::no_init);
    };
    ($route:path, sql_objects = false) => {
        $crate::export_filter!($route, init = $crate::no_init_no_sql);
    };
    ($route:path, init = $init:path) => {
        struct __SluiceFilter;
        impl $crate::bindings::Guest for __SluiceFilter {
            fn init(
                config: ::std::string::String,
            ) -> ::std::result::Result<$crate::InitInfo, ::std::string::String> {
                $init(&config)
            }
            fn route(req: $crate::QueryRequest, group: ::std::string::String) -> $crate::Decision {
                let ctx = $crate::Ctx::new(group);
                $route(&req, &ctx)
            }
        }
        $crate::bindings::__export_router!(__SluiceFilter with_types_in $crate::bindings);
    };
}

/// The init function of filters that take no configuration: accepts anything.
pub fn no_init(_config: &str) -> Result<InitInfo, String> {
    Ok(InitInfo {
        wants_sql_objects: true,
    })
}

/// Like [`no_init`], for filters that never read the SQL objects.
pub fn no_init_no_sql(_config: &str) -> Result<InitInfo, String> {
    Ok(InitInfo {
        wants_sql_objects: false,
    })
}
