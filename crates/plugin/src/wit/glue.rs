//! The glue every contract version shares, written once: the two
//! `bindgen!` invocations, the pre-instantiated component (`Pre`) and its
//! export calls (`describe`, `inject`, `check`), the host imports every
//! version has had since 0.1, and the conversions whose WIT types have not
//! changed. Each version module invokes these macros once and writes out
//! only what it genuinely changes or adds (0.1's `alive`, 0.2's node
//! states, history, disk and link faults).
//!
//! Why macros and not a trait: each version's `bindgen!` generates its own
//! types (`v0_1::types::Verdict` and `v0_2::types::Verdict` are unrelated
//! types with the same fields) and its exports as inherent methods, so no
//! trait bound can name "the `call_check` of whichever version" without a
//! per-version impl restating every call, which is the copy this removes.
//! The logic is the same text over a different module, which is what
//! `macro_rules!` is for, and each expansion is type-checked against that
//! version's bindings. This is wasmtime's and Spin's "one implementation
//! linked for several versions", as far as Rust's types allow.
//!
//! The macros resolve these names at the call site, where every version
//! module has them: `fault` and `assertion` (the modules `bindings!`
//! defines), and `types` and `host` (the version module's `use` of their
//! `chaos:plugin/types` and `chaos:plugin/host` interfaces).

/// A version's bindings: its two `bindgen!` modules, `fault` and
/// `assertion`, over the frozen WIT directory `$wit` (relative to the
/// crate, as `bindgen!` takes it), and `WIT`, that directory's `types.wit`
/// for the test that checks `MIN`/`MAX` against it. `assertion` reuses
/// `fault`'s `types` and `host`, plus what `with` maps (0.2's history
/// resource, for one).
macro_rules! bindings {
    ($wit:literal $(, with: { $($with:tt)* })? $(,)?) => {
        /// The WIT these bindings come from (checked against MIN/MAX in a test).
        #[cfg(test)]
        pub const WIT: &str =
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $wit, "/types.wit"));

        mod fault {
            ::wasmtime::component::bindgen!({
                world: "fault-plugin",
                path: $wit,
                imports: { default: async },
                exports: { default: async },
            });
        }

        mod assertion {
            ::wasmtime::component::bindgen!({
                world: "assertion-plugin",
                path: $wit,
                imports: { default: async },
                exports: { default: async },
                with: {
                    "chaos:plugin/types": super::fault::chaos::plugin::types,
                    "chaos:plugin/host": super::fault::chaos::plugin::host,
                    $($($with)*)?
                },
            });
        }
    };
}

/// The items a version module shares with every other: `Pre` and its export
/// calls, `types::Host`, and the `From` conversions of `log-level`,
/// `signal`, `capability`, `plugin-info`, `verdict`, `observations` and
/// `cycle-info`.
///
/// What grows per version is given as lists, each checked by the compiler
/// against that version's bindings:
/// - `capabilities`: the version's `capability` cases, named as the host's
///   `Capability` variants; the match they expand to must be exhaustive.
/// - `added_observations`: the `observations` fields the version has beyond
///   0.1's, copied as they are (a field left out does not compile).
///
/// The version module writes what genuinely differs:
/// `From<&NodeObservation>` (how a node is shown) and the imports it added.
macro_rules! glue {
    (
        capabilities: [$($capability:ident),+ $(,)?],
        added_observations: [$($added:ident),* $(,)?] $(,)?
    ) => {
        /// A pre-instantiated component of this version, by world.
        pub enum Pre {
            Fault(fault::FaultPluginPre<$crate::state::PluginState>),
            Assertion(assertion::AssertionPluginPre<$crate::state::PluginState>),
        }

        impl Pre {
            pub fn new(
                kind: &str,
                pre: ::wasmtime::component::InstancePre<$crate::state::PluginState>,
            ) -> ::wasmtime::Result<Self> {
                Ok(match kind {
                    "fault" => Self::Fault(fault::FaultPluginPre::new(pre)?),
                    _ => Self::Assertion(assertion::AssertionPluginPre::new(pre)?),
                })
            }

            pub fn is_fault(&self) -> bool {
                matches!(self, Self::Fault(_))
            }

            pub async fn describe(
                &self,
                store: &mut ::wasmtime::Store<$crate::state::PluginState>,
            ) -> ::wasmtime::Result<::chaos_model::contract::Info> {
                let info = match self {
                    Self::Fault(pre) => {
                        let b = pre.instantiate_async(&mut *store).await?;
                        b.chaos_plugin_fault().call_describe(&mut *store).await?
                    }
                    Self::Assertion(pre) => {
                        let b = pre.instantiate_async(&mut *store).await?;
                        b.chaos_plugin_assertion()
                            .call_describe(&mut *store)
                            .await?
                    }
                };
                Ok(info.into())
            }

            pub async fn inject(
                &self,
                store: &mut ::wasmtime::Store<$crate::state::PluginState>,
                cycle: &$crate::observations::CycleInfo,
            ) -> ::wasmtime::Result<Result<(), String>> {
                let Self::Fault(pre) = self else {
                    return Ok(Err("not a fault plugin".into()));
                };
                let b = pre.instantiate_async(&mut *store).await?;
                b.chaos_plugin_fault()
                    .call_inject(&mut *store, &cycle.clone().into())
                    .await
            }

            pub async fn check(
                &self,
                store: &mut ::wasmtime::Store<$crate::state::PluginState>,
                observations: &$crate::observations::Observations,
            ) -> ::wasmtime::Result<Result<::chaos_model::contract::Verdict, String>> {
                let Self::Assertion(pre) = self else {
                    return Ok(Err("not an assertion plugin".into()));
                };
                let b = pre.instantiate_async(&mut *store).await?;
                let v = b
                    .chaos_plugin_assertion()
                    .call_check(&mut *store, &observations.into())
                    .await?;
                Ok(Ok(v.into()))
            }
        }

        impl types::Host for $crate::state::PluginState {}

        impl From<types::LogLevel> for ::chaos_model::contract::LogLevel {
            fn from(level: types::LogLevel) -> Self {
                match level {
                    types::LogLevel::Debug => Self::Debug,
                    types::LogLevel::Info => Self::Info,
                    types::LogLevel::Warn => Self::Warn,
                    types::LogLevel::Error => Self::Error,
                }
            }
        }

        impl From<types::Signal> for ::chaos_model::contract::Signal {
            fn from(sig: types::Signal) -> Self {
                match sig {
                    types::Signal::Kill => Self::Kill,
                    types::Signal::Term => Self::Term,
                }
            }
        }

        impl From<types::Capability> for ::chaos_model::contract::Capability {
            fn from(c: types::Capability) -> Self {
                match c {
                    $(types::Capability::$capability => Self::$capability,)+
                }
            }
        }

        impl From<types::PluginInfo> for ::chaos_model::contract::Info {
            fn from(i: types::PluginInfo) -> Self {
                Self {
                    name: i.name,
                    version: i.version,
                    author: i.author,
                    description: i.description,
                    kind: match i.kind {
                        types::PluginKind::Fault => "fault",
                        types::PluginKind::Assertion => "assertion",
                    },
                    capabilities: i.capabilities.into_iter().map(Into::into).collect(),
                    params: i.params.into_iter().map(Into::into).collect(),
                }
            }
        }

        impl From<types::ParamSpec> for ::chaos_model::contract::ParamSpec {
            fn from(p: types::ParamSpec) -> Self {
                Self {
                    name: p.name,
                    kind: match p.kind {
                        types::ParamType::Integer => "integer",
                        types::ParamType::Float => "float",
                        types::ParamType::Boolean => "boolean",
                        types::ParamType::Text => "text",
                    },
                    default: p.default_value,
                    doc: p.doc,
                }
            }
        }

        impl From<types::Verdict> for ::chaos_model::contract::Verdict {
            fn from(v: types::Verdict) -> Self {
                Self {
                    outcome: match v.outcome {
                        types::Outcome::Pass => "pass",
                        types::Outcome::Fail => "fail",
                        types::Outcome::Unknown => "unknown",
                    },
                    reasons: v.reasons,
                    figures: v.figures.into_iter().map(|f| (f.name, f.value)).collect(),
                }
            }
        }

        impl From<&$crate::observations::Observations> for types::Observations {
            fn from(o: &$crate::observations::Observations) -> Self {
                Self {
                    cycle: o.cycle.clone().into(),
                    acked: o.acked.clone(),
                    quorum_not_met: o.quorum_not_met.clone(),
                    failed: o.failed.clone(),
                    indeterminate: o.indeterminate.clone(),
                    nodes: o.nodes.iter().map(Into::into).collect(),
                    threshold: o.threshold,
                    $($added: o.$added.clone(),)*
                }
            }
        }

        impl From<$crate::observations::CycleInfo> for types::CycleInfo {
            fn from(c: $crate::observations::CycleInfo) -> Self {
                Self {
                    cycle: c.cycle,
                    seed: c.seed,
                    nodes: c.nodes,
                    primary: c.primary,
                    writes: c.writes,
                    params: c.params,
                }
            }
        }
    };
}

/// The `chaos:plugin/host` functions of contract 0.1 (as its 0.1.1 WIT
/// declares them), which every later version keeps; expanded inside a version's `impl host::Host for PluginState` block,
/// which then adds the functions only that version has.
///
/// All of them forward to the version-free `PluginState::host_*` methods,
/// so every version's import does the same thing.
macro_rules! host_since_0_1 {
    () => {
        async fn log(&mut self, level: types::LogLevel, message: String) {
            self.host_log(level.into(), message)
        }
        async fn random(&mut self) -> u64 {
            self.host_random()
        }
        async fn now_ms(&mut self) -> u64 {
            self.host_now_ms()
        }
        async fn sleep_ms(&mut self, ms: u32) {
            self.host_sleep_ms(ms).await
        }
        async fn wait_writes(&mut self, count: u32) -> u32 {
            self.host_wait_writes(count).await
        }
        async fn leader(&mut self) -> Result<Option<u32>, String> {
            self.host_leader().await
        }
        async fn send_signal(&mut self, node: u32, sig: types::Signal) -> Result<(), String> {
            self.host_send_signal(node, sig.into()).await
        }
        async fn pause(&mut self, node: u32, ms: u32) -> Result<(), String> {
            self.host_pause(node, ms).await
        }
        async fn partition(&mut self, grudge: Vec<Vec<u32>>, ms: u32) -> Result<(), String> {
            self.host_partition(grudge, ms).await
        }
        async fn clock_offset(&mut self, node: u32, offset_ms: i64, ms: u32) -> Result<(), String> {
            self.host_clock_offset(node, offset_ms, ms).await
        }
    };
}

/// Everything 0.2.0 and 0.3.0 share beyond their `bindings!`: the linker,
/// `glue!` with 0.2's capabilities and observations, the `host` imports
/// 0.2 added (restart, disk, link, clock-drift), node states and the
/// `history` interface. 0.3.0 only adds a world (the client's); a version
/// that changes any of this writes its own.
macro_rules! since_0_2 {
    () => {
        use $crate::history::OpsCursor;
        use $crate::observations::{NodeObservation, NodeState};
        use $crate::state::PluginState;
        use chaos_model::contract::{DiskFault, LinkFault};
        use wasmtime::component::{HasSelf, Linker};

        use assertion::chaos::plugin::history;
        use fault::chaos::plugin::{host, types};

        pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
            host::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
            types::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
            history::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
        }

        $crate::wit::glue::glue!(
            capabilities: [Signal, Pause, Partition, Clock, Restart, Disk, Link],
            added_observations: [unexpected],
        );

        impl host::Host for PluginState {
            $crate::wit::glue::host_since_0_1!();

            async fn restart(&mut self, node: u32, down_ms: u32) -> Result<(), String> {
                self.host_restart(node, down_ms).await
            }
            async fn disk(&mut self, node: u32, fault: types::DiskFault, ms: u32) -> Result<(), String> {
                let fault = match fault {
                    types::DiskFault::LoseUnsynced => DiskFault::LoseUnsynced,
                    types::DiskFault::FsyncError => DiskFault::FsyncError,
                    types::DiskFault::DiskFull => DiskFault::DiskFull,
                    types::DiskFault::SlowIo(ms) => DiskFault::SlowIo(ms),
                };
                self.host_disk(node, fault, ms).await
            }
            async fn link(
                &mut self,
                grudge: Vec<Vec<u32>>,
                fault: types::LinkFault,
                ms: u32,
            ) -> Result<(), String> {
                let fault = LinkFault {
                    latency_ms: fault.latency_ms,
                    jitter_ms: fault.jitter_ms,
                    loss: fault.loss,
                    bandwidth: fault.bandwidth,
                    reset: fault.reset,
                };
                self.host_link(grudge, fault, ms).await
            }

            async fn clock_drift(&mut self, node: u32, ppm: i32, ms: u32) -> Result<(), String> {
                self.host_clock_drift(node, ppm, ms).await
            }
        }

        impl From<&NodeObservation> for types::NodeObservation {
            fn from(n: &NodeObservation) -> Self {
                Self {
                    node: n.node,
                    state: match n.state {
                        NodeState::Up => types::NodeState::Up,
                        NodeState::Exited => types::NodeState::Exited,
                        NodeState::Silent => types::NodeState::Silent,
                    },
                    ids: n.ids.clone(),
                    converged_ms: n.converged_ms,
                }
            }
        }

        // The history interface (since 0.2.0): one table entry per `cycle-ops`
        // call, pointing at the cycle's shared history.
        impl history::Host for PluginState {
            async fn cycle_ops(&mut self) -> wasmtime::component::Resource<OpsCursor> {
                let cursor = OpsCursor {
                    history: self.history.clone().unwrap_or_default(),
                };
                self.table()
                    .push(cursor)
                    .expect("a plugin's resource table holds far fewer than 2^32 handles")
            }
            async fn effect_windows(&mut self) -> Vec<history::EffectWindow> {
                let Some(h) = &self.history else {
                    return vec![];
                };
                h.effects
                    .iter()
                    .map(|e| history::EffectWindow {
                        kind: e.kind.clone(),
                        node: e.node,
                        start_us: e.start_us,
                        end_us: e.end_us,
                    })
                    .collect()
            }
        }

        impl history::HostOps for PluginState {
            async fn len(&mut self, ops: wasmtime::component::Resource<OpsCursor>) -> u64 {
                self.table()
                    .get(&ops)
                    .map_or(0, |c| c.history.ops.len() as u64)
            }
            async fn chunk(
                &mut self,
                ops: wasmtime::component::Resource<OpsCursor>,
                start: u64,
                max: u32,
            ) -> Vec<history::Op> {
                let Ok(cursor) = self.table().get(&ops) else {
                    return vec![];
                };
                cursor.chunk(start, max).iter().map(op).collect()
            }
            async fn drop(
                &mut self,
                ops: wasmtime::component::Resource<OpsCursor>,
            ) -> wasmtime::Result<()> {
                self.table().delete(ops)?;
                Ok(())
            }
        }

        fn op(o: &chaos_model::history::Op) -> history::Op {
            use chaos_model::history::{Kind, Status};
            history::Op {
                index: o.index,
                process: o.process,
                node: o.node,
                kind: match o.kind {
                    Kind::Write => history::OpKind::Write,
                    Kind::Read => history::OpKind::Read,
                    Kind::Put => history::OpKind::Put,
                    Kind::Get => history::OpKind::Get,
                    Kind::Cas => history::OpKind::Cas,
                },
                key: o.key.clone(),
                value: o.value.clone(),
                expected: o.expected.clone(),
                read: o.read.clone(),
                seen: o.seen.clone(),
                status: match o.status {
                    Status::Ok => history::OpResult::Ok,
                    Status::Fail => history::OpResult::Fail,
                    Status::Info => history::OpResult::Info,
                },
                invoke_us: o.invoke_us,
                complete_us: o.complete_us,
            }
        }
    };
}

pub(super) use {bindings, glue, host_since_0_1, since_0_2};
