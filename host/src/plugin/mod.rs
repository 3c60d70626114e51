//! The plugin runtime: WebAssembly components loaded at run time, limited to
//! what the user granted.
//!
//! Loading: read the contract version from the component's imports/exports,
//! refuse versions this host does not speak, compile, pre-instantiate, call
//! `describe()`, check grants and parameters. Every later call gets a fresh
//! instance from the pre-instantiated component (a trap poisons an instance),
//! a fuel budget, a memory cap over the whole instance (`limits`), an epoch
//! deadline on the wall clock, and WASI randomness and clocks derived from
//! the cycle's seed (`wasi`). A plugin's name must be plain and unique
//! (`identity`).
//!
//! Where the bytes come from is `source`: a path, a built-in compiled into
//! the binary (`builtins`), or an OCI artifact (`oci`) pinned by
//! `chaos.lock` (`lock`).

mod bindings;
pub mod builtins;
mod grants;
mod identity;
mod imports;
mod limits;
pub mod lock;
mod native;
mod observations;
pub mod oci;
mod runtime;
pub mod source;
mod wasi;

pub use bindings::types as bindings_types;
pub use bindings::types::Capability;
pub use grants::{Grants, parse as grants_parse};
pub use identity::Names;
pub use observations::{CycleInfo, NodeObservation, Observations};
pub use runtime::{AssertionVerdict, Loaded, Runtime};
pub use source::{PluginRef, Resolver};

/// Contract versions this host accepts.
/// Contract versions this host accepts, newest first. 0.1.1 only added a host
/// function, so 0.1.0 plugins link against it unchanged.
pub const ACCEPTED_VERSIONS: &[&str] = &["0.1.1", "0.1.0"];
