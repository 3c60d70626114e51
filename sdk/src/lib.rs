//! Write chaos-host fault and assertion plugins, and clients ([`client`]),
//! as WebAssembly components.
//!
//! A plugin is one struct implementing [`Fault`] (or [`Assertion`]) and one
//! export macro. Everything the host lends a plugin is in [`host`]; there are
//! no files, sockets or environment, and memory and CPU are bounded.
//!
//! ```no_run
//! use chaos_sdk::{host, Capability, CycleInfo, Fault, PluginInfo};
//!
//! struct KillPrimary;
//!
//! impl Fault for KillPrimary {
//!     fn describe() -> PluginInfo {
//!         chaos_sdk::fault_info("kill_primary_mid_write", env!("CARGO_PKG_VERSION"))
//!             .describe("SIGKILL the primary once half the burst is issued")
//!             .needs(Capability::Signal)
//!             .build()
//!     }
//!     fn inject(cycle: CycleInfo) -> Result<(), String> {
//!         host::wait_writes(cycle.writes / 2);
//!         host::kill(cycle.primary)
//!     }
//! }
//!
//! chaos_sdk::export_fault!(KillPrimary);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the plugin.

#[doc(hidden)]
pub mod fault_bindings {
    wit_bindgen::generate!({
        world: "fault-plugin",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_fault_plugin",
        default_bindings_module: "chaos_sdk::fault_bindings",
    });
}

#[doc(hidden)]
pub mod assertion_bindings {
    wit_bindgen::generate!({
        world: "assertion-plugin",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_assertion_plugin",
        default_bindings_module: "chaos_sdk::assertion_bindings",
        with: {
            "chaos:plugin/types@0.3.0": crate::fault_bindings::chaos::plugin::types,
            "chaos:plugin/host@0.3.0": crate::fault_bindings::chaos::plugin::host,
        },
    });
}

#[doc(hidden)]
pub mod client_bindings {
    wit_bindgen::generate!({
        world: "client-plugin",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "__export_client_plugin",
        default_bindings_module: "chaos_sdk::client_bindings",
        with: {
            "chaos:plugin/types@0.3.0": crate::fault_bindings::chaos::plugin::types,
        },
    });
}

pub mod client;

mod info;
pub use info::{InfoBuilder, assertion_info, fault_info};

pub use fault_bindings::chaos::plugin::types::{
    Capability, CycleInfo, DiskFault, Figure, LinkFault, LogLevel, NodeObservation, NodeState,
    Observations, Outcome, ParamSpec, ParamType, PluginInfo, PluginKind, Signal, Verdict,
};

// CONTRACT_VERSION and CONTRACT_SECTION, from the package line of
// wit/types.wit (build.rs): the one place the version is written.
include!(concat!(env!("OUT_DIR"), "/contract.rs"));

/// A fault class. `inject` runs during the cycle's burst; it asks the host for
/// effects and returns. The host undoes every effect, whatever `inject` does.
pub trait Fault {
    /// Name, version, capabilities and parameters of this plugin.
    fn describe() -> PluginInfo;
    /// Inject the fault into the running cycle.
    fn inject(cycle: CycleInfo) -> Result<(), String>;
}

/// An assertion: judges a cycle from what the host observed.
pub trait Assertion {
    /// Name, version and parameters of this plugin.
    fn describe() -> PluginInfo;
    /// Return pass, fail or unknown, with reasons and figures.
    fn check(observations: Observations) -> Verdict;
}

impl<T: Fault> fault_bindings::exports::chaos::plugin::fault::Guest for T {
    fn describe() -> PluginInfo {
        T::describe()
    }
    fn inject(cycle: CycleInfo) -> Result<(), String> {
        T::inject(cycle)
    }
}

impl<T: Assertion> assertion_bindings::exports::chaos::plugin::assertion::Guest for T {
    fn describe() -> PluginInfo {
        T::describe()
    }
    fn check(observations: Observations) -> Verdict {
        T::check(observations)
    }
}

/// Export a type implementing [`Fault`] as this component's fault plugin.
#[macro_export]
macro_rules! export_fault {
    ($t:ident) => {
        $crate::fault_bindings::__export_fault_plugin!($t with_types_in $crate::fault_bindings);
        $crate::__contract_section!();
    };
}

/// Export a type implementing [`Assertion`] as this component's assertion.
#[macro_export]
macro_rules! export_assertion {
    ($t:ident) => {
        $crate::assertion_bindings::__export_assertion_plugin!($t with_types_in $crate::assertion_bindings);
        $crate::__contract_section!();
    };
}

/// Export a type implementing [`client::Client`] as this component's
/// client.
#[macro_export]
macro_rules! export_client {
    ($t:ident) => {
        $crate::client_bindings::__export_client_plugin!($t with_types_in $crate::client_bindings);
        $crate::__contract_section!();
    };
}

/// The `chaos:contract-version` custom section, emitted in the plugin's own
/// crate (the root of the link) so the linker keeps it whatever it drops
/// from the SDK's code. The host reads it before compiling the component.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_section {
    () => {
        #[cfg(target_arch = "wasm32")]
        #[unsafe(link_section = "chaos:contract-version")]
        #[used]
        static __CHAOS_CONTRACT_VERSION: [u8; $crate::CONTRACT_SECTION.len()] =
            $crate::CONTRACT_SECTION;
    };
}

/// Typed access to the campaign parameters a cycle carries.
pub trait Params {
    /// The raw value of parameter `name`, if the campaign or default set it.
    fn param(&self, name: &str) -> Option<&str>;
    /// Parameter `name` as an integer, or `default` when absent or malformed.
    /// The host has already validated the type against `describe()`.
    fn param_u64(&self, name: &str, default: u64) -> u64 {
        self.param(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
    /// Parameter `name` as a signed integer, or `default`.
    fn param_i64(&self, name: &str, default: i64) -> i64 {
        self.param(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
    /// Parameter `name` as a float, or `default` when absent or malformed.
    fn param_f64(&self, name: &str, default: f64) -> f64 {
        self.param(name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
}

impl Params for CycleInfo {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A peer (a node other than the primary), chosen with the cycle's seeded
/// randomness so `--seed` replays the choice; `None` when the primary is the
/// only node (then nothing is drawn).
pub fn random_peer(cycle: &CycleInfo) -> Option<u32> {
    let peers: Vec<u32> = (0..cycle.nodes).filter(|&n| n != cycle.primary).collect();
    if peers.is_empty() {
        return None;
    }
    Some(peers[host::random_below(peers.len() as u64) as usize])
}

/// What the host lends a plugin. Effects return `Err` with the host's reason
/// when the capability was not granted or the node does not exist.
pub mod host {
    use crate::fault_bindings::chaos::plugin::host as raw;
    use crate::{DiskFault, LinkFault, LogLevel, Signal};

    /// Log a line to the campaign log at info level.
    pub fn info(message: &str) {
        raw::log(LogLevel::Info, message);
    }
    /// Log a line at warn level.
    pub fn warn(message: &str) {
        raw::log(LogLevel::Warn, message);
    }
    /// Log a line at a chosen level.
    pub fn log(level: LogLevel, message: &str) {
        raw::log(level, message);
    }
    /// Next number from the cycle's seeded generator (replayable by `--seed`).
    pub fn random() -> u64 {
        raw::random()
    }
    /// A seeded number in `0..bound` (`bound` > 0).
    pub fn random_below(bound: u64) -> u64 {
        raw::random() % bound.max(1)
    }
    /// Milliseconds since the burst started, on the host's monotonic clock.
    pub fn now_ms() -> u64 {
        raw::now_ms()
    }
    /// Sleep on the host clock; costs no CPU budget.
    pub fn sleep_ms(ms: u32) {
        raw::sleep_ms(ms)
    }
    /// Block until `count` writes were issued or the burst ended.
    ///
    /// The burst starts once every fault plugin of the class has made its
    /// first wait (this or [`sleep_ms`]) or returned, and after 2 s at
    /// the latest: what a plugin does before its first wait is set-up, in
    /// force from the first write.
    pub fn wait_writes(count: u32) -> u32 {
        raw::wait_writes(count)
    }
    /// The node that leads right now, from the campaign's `[leader]` probe
    /// (`Ok(None)` while no leader is elected; an error when the campaign
    /// has no probe). Needs no capability: it only asks the nodes.
    pub fn leader() -> Result<Option<u32>, String> {
        raw::leader()
    }
    /// SIGKILL node `node` (needs the `signal` capability).
    pub fn kill(node: u32) -> Result<(), String> {
        raw::send_signal(node, Signal::Kill)
    }
    /// SIGTERM node `node` (needs the `signal` capability).
    pub fn terminate(node: u32) -> Result<(), String> {
        raw::send_signal(node, Signal::Term)
    }
    /// SIGSTOP node `node` for `ms`, resumed by the host (needs `pause`).
    pub fn pause(node: u32, ms: u32) -> Result<(), String> {
        raw::pause(node, ms)
    }
    /// Node `i` drops traffic from every node in `grudge[i]` for `ms`
    /// (needs `partition`).
    pub fn partition(grudge: &[Vec<u32>], ms: u32) -> Result<(), String> {
        raw::partition(grudge, ms)
    }
    /// Shift node `node`'s wall clock by `offset_ms` for `ms` (needs `clock`).
    pub fn clock_offset(node: u32, offset_ms: i64, ms: u32) -> Result<(), String> {
        raw::clock_offset(node, offset_ms, ms)
    }
    /// SIGKILL node `node` now, keep it down for `down_ms`, then have the
    /// host start it again with its data dir, ports and command and wait
    /// until it is ready (needs `restart`). Returns once the kill took; the
    /// start happens when the lease ends, or at the heal.
    pub fn restart(node: u32, down_ms: u32) -> Result<(), String> {
        raw::restart(node, down_ms)
    }
    /// Apply `fault` to node `node`'s data dir for `ms`, through the host's
    /// FUSE layer (needs `disk`; the host refuses it before the run where
    /// it cannot mount one).
    pub fn disk(node: u32, fault: DiskFault, ms: u32) -> Result<(), String> {
        raw::disk(node, fault, ms)
    }
    /// Hold node `node`'s unsynced writes for `ms`; a kill meanwhile
    /// ([`restart`], [`kill`]) drops them, as a power failure would.
    pub fn lose_unsynced(node: u32, ms: u32) -> Result<(), String> {
        raw::disk(node, DiskFault::LoseUnsynced, ms)
    }
    /// Fail node `node`'s fsyncs with EIO for `ms`.
    pub fn fsync_error(node: u32, ms: u32) -> Result<(), String> {
        raw::disk(node, DiskFault::FsyncError, ms)
    }
    /// Fail node `node`'s writes with ENOSPC for `ms`.
    pub fn disk_full(node: u32, ms: u32) -> Result<(), String> {
        raw::disk(node, DiskFault::DiskFull, ms)
    }
    /// Add `latency_ms` to each of node `node`'s reads, writes and fsyncs,
    /// for `ms`.
    pub fn slow_io(node: u32, latency_ms: u32, ms: u32) -> Result<(), String> {
        raw::disk(node, DiskFault::SlowIo(latency_ms), ms)
    }
    /// Degrade the directed links of `grudge` (as for [`partition`]: node
    /// `i` receives degraded traffic from every node in `grudge[i]`) by
    /// `fault` for `ms` (needs `link`; refused in loopback mode).
    pub fn link(grudge: &[Vec<u32>], fault: LinkFault, ms: u32) -> Result<(), String> {
        raw::link(grudge, fault, ms)
    }
    /// A [`LinkFault`] that degrades nothing, to start from with struct
    /// update syntax: `LinkFault { latency_ms: 200, ..host::no_link_fault() }`.
    pub fn no_link_fault() -> LinkFault {
        LinkFault {
            latency_ms: 0,
            jitter_ms: 0,
            loss: 0.0,
            bandwidth: None,
            reset: false,
        }
    }
    /// Let node `node`'s wall clock run `ppm` millionths fast (slow when
    /// negative) for `ms`; its monotonic clock is untouched (needs `clock`).
    pub fn clock_drift(node: u32, ppm: i32, ms: u32) -> Result<(), String> {
        raw::clock_drift(node, ppm, ms)
    }
}

/// Grudges for [`host::partition`]: for each node, the nodes whose traffic
/// it drops.
pub mod grudge {
    /// Cut `node` off from every other of `nodes` nodes, both directions.
    pub fn isolate(node: u32, nodes: u32) -> Vec<Vec<u32>> {
        (0..nodes)
            .map(|i| {
                if i == node {
                    (0..nodes).filter(|&j| j != node).collect()
                } else {
                    vec![node]
                }
            })
            .collect()
    }

    /// Split the cluster into `side` and the rest, both directions.
    pub fn split(side: &[u32], nodes: u32) -> Vec<Vec<u32>> {
        (0..nodes)
            .map(|i| {
                let mine = side.contains(&i);
                (0..nodes).filter(|j| side.contains(j) != mine).collect()
            })
            .collect()
    }

    /// Only `to` drops traffic from `from` (an asymmetric cut).
    pub fn one_way(from: u32, to: u32, nodes: u32) -> Vec<Vec<u32>> {
        (0..nodes)
            .map(|i| if i == to { vec![from] } else { vec![] })
            .collect()
    }

    /// Every other of `nodes` nodes takes `node`'s traffic: the links
    /// from `node` to each peer, one direction (for [`crate::host::link`],
    /// what the node sends).
    pub fn outbound(node: u32, nodes: u32) -> Vec<Vec<u32>> {
        (0..nodes)
            .map(|i| if i == node { vec![] } else { vec![node] })
            .collect()
    }
}

/// The history of the cycle an assertion checks: every operation with its
/// client, node and times, read from the host in chunks. (Since 0.2.0.)
///
/// ```no_run
/// let acked_puts = chaos_sdk::history::ops()
///     .filter(|op| op.kind == chaos_sdk::history::OpKind::Put)
///     .filter(|op| op.status == chaos_sdk::history::OpResult::Ok)
///     .count();
/// ```
pub mod history {
    use crate::assertion_bindings::chaos::plugin::history as raw;
    pub use raw::{EffectWindow, Op, OpKind, OpResult};

    /// Operations fetched per host call: large enough that the call cost
    /// vanishes, small enough that a chunk never needs much guest memory.
    pub const CHUNK: u32 = 1024;

    /// How many operations the cycle's history holds.
    pub fn len() -> u64 {
        raw::cycle_ops().len()
    }

    /// Every operation of the cycle, in index (invoke) order, fetched
    /// `CHUNK` at a time.
    pub fn ops() -> Ops {
        let handle = raw::cycle_ops();
        let len = handle.len();
        Ops {
            handle,
            len,
            next: 0,
            buffer: Vec::new().into_iter(),
        }
    }

    /// The cycle's effects, in start order.
    pub fn effect_windows() -> Vec<EffectWindow> {
        raw::effect_windows()
    }

    /// Iterator over a history; see [`ops`].
    pub struct Ops {
        handle: raw::Ops,
        len: u64,
        next: u64,
        buffer: std::vec::IntoIter<Op>,
    }

    impl Iterator for Ops {
        type Item = Op;
        fn next(&mut self) -> Option<Op> {
            if let Some(op) = self.buffer.next() {
                return Some(op);
            }
            if self.next >= self.len {
                return None;
            }
            let chunk = self.handle.chunk(self.next, CHUNK);
            if chunk.is_empty() {
                // The host said len was larger than it served: stop rather
                // than spin.
                self.next = self.len;
                return None;
            }
            self.next += chunk.len() as u64;
            self.buffer = chunk.into_iter();
            self.buffer.next()
        }
        fn size_hint(&self) -> (usize, Option<usize>) {
            let left = (self.len - self.next) as usize + self.buffer.len();
            (left, Some(left))
        }
    }
}
