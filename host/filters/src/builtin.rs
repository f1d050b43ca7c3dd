//! The filters shipped inside the binary (built from `guest-filters/` by `build.rs`).

/// Names usable as `builtin:NAME`.
pub const NAMES: &[&str] = &["query-count", "stochastic", "routing-rules"];

/// The component bytes of a builtin filter.
pub fn bytes(name: &str) -> Option<&'static [u8]> {
    match name {
        "query-count" => Some(include_bytes!(concat!(
            env!("OUT_DIR"),
            "/query_count.wasm"
        ))),
        "stochastic" => Some(include_bytes!(concat!(env!("OUT_DIR"), "/stochastic.wasm"))),
        "routing-rules" => Some(include_bytes!(concat!(
            env!("OUT_DIR"),
            "/routing_rules.wasm"
        ))),
        _ => None,
    }
}

/// Where the build put `hostile.wasm`, a filter of the guest workspace that misbehaves on purpose
/// (traps, loops, grows memory): tests and benchmarks load it to prove the sandbox. It is not
/// embedded in the binary.
pub const HOSTILE_TEST_MODULE: &str = env!("SLUICE_HOSTILE_WASM");
