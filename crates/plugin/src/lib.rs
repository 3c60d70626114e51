//! The plugin runtime: WebAssembly components loaded at run time, limited to
//! what the user granted.
//!
//! Loading: read the contract version (the `chaos:contract-version` section,
//! else the exports), refuse versions this host does not speak, pick that
//! version's bindings (`wit/`), compile, pre-instantiate, call
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

pub use chaos_builtins as builtins;

pub mod client;
mod grants;
mod history;
mod identity;
mod imports;
mod limits;
pub mod lock;
mod native;
mod observations;
pub mod oci;
mod runtime;
pub mod source;
mod state;
mod wasi;
mod wit;

pub use chaos_model::contract::{Capability, DiskFault, LinkFault, Version};
pub use grants::{Grants, parse as grants_parse};
pub use identity::Names;
pub use observations::{CycleInfo, NodeObservation, NodeState, Observations};
pub use runtime::{AssertionVerdict, Loaded, Runtime};
pub use source::Resolver;
pub use state::clip;

/// The newest contract version this host speaks (`wit/deps/`'s newest
/// directory, which new plugins are built against).
pub const LATEST: Version = wit::latest::MAX;
