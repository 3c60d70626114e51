//! Host-side bindings for `wit/types.wit`, one module per world; the
//! assertion world reuses the fault world's types and host interface.

pub mod fault {
    wasmtime::component::bindgen!({
        world: "fault-plugin",
        path: "../wit",
        imports: { default: async },
        exports: { default: async },
    });
}

pub mod assertion {
    wasmtime::component::bindgen!({
        world: "assertion-plugin",
        path: "../wit",
        imports: { default: async },
        exports: { default: async },
        with: {
            "chaos:plugin/types": super::fault::chaos::plugin::types,
            "chaos:plugin/host": super::fault::chaos::plugin::host,
        },
    });
}

pub use fault::chaos::plugin::host;
pub use fault::chaos::plugin::types;
