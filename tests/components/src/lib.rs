//! The guest crates of this repository (`plugins/*`, `examples/plugins/*`,
//! `tests/guests/*`) as wasm32-wasip2 components, built by this crate's
//! build script: one constant per crate (`CONVERGENCE`, `MISBEHAVE`, ...)
//! holding the absolute path of its `.wasm`, and [`path`] by crate name.
//! A dev-dependency of chaos-host, so `cargo test` needs no script first.

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// The built component of guest crate `name` (its directory's name), if
/// there is such a crate.
pub fn path(name: &str) -> Option<&'static str> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, p)| *p)
}
