//! The one host-side `bindgen!` for the `sluice:filter/router` world in `wit/`.
wasmtime::component::bindgen!({
    world: "router",
    path: "../wit",
    imports: { default: async },
    exports: { default: async },
});
