//! The one host-side `bindgen!` for the `sluice:filter/router` world in `wit/`.
wasmtime::component::bindgen!({
    world: "router",
    path: "../../wit",
    // only the cache may wait (on Redis); cluster and log answer from memory
    imports: { "sluice:filter/cache": async },
    exports: { default: async },
});
