//! Native plugins (opt-in, `--native-plugin LIB.so`): the same fault
//! contract through a small C ABI, for faults the sandbox cannot express.
//!
//! They are NOT sandboxed: they run inside chaos-host with all its
//! privileges, cannot be preempted (a deadline fails the cycle and undoes
//! its effects, but the call's thread runs on), and a crash in one takes
//! chaos-host down. Every output that names one says so. Capabilities still
//! go through grants, since effects still go through the host.
//!
//! The ABI (see `sdk/native/chaos_native.h`):
//! - `const char *chaos_native_contract(void)`: "0.1.0";
//! - `const char *chaos_native_describe(void)`: JSON, see [`Describe`];
//! - `char *chaos_native_inject(const char *cycle_json, const ChaosHost *host)`:
//!   NULL on success, else an error message freed with
//! - `void chaos_native_free(char *)`.

/// The native C ABI's version: its own contract, separate from the WIT one
/// (it mirrors the fault world of chaos:plugin@0.1.0 and has not changed).
pub const ABI: &str = "0.1.0";

use super::Capability;
use super::grants::Grants;
use super::imports::{MAX_LOG_BYTES, MAX_LOG_LINES};
use super::observations::CycleInfo;
use super::state::{PluginError, clip};
use anyhow::{Context, bail};
use chaos_effects::Effects;
use nix::sys::signal::Signal;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::ffi::{CStr, CString, c_char, c_void};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

type ContractFn = unsafe extern "C" fn() -> *const c_char;
type DescribeFn = unsafe extern "C" fn() -> *const c_char;
type InjectFn = unsafe extern "C" fn(*const c_char, *const ChaosHost) -> *mut c_char;
type FreeFn = unsafe extern "C" fn(*mut c_char);

/// What a native plugin describes itself as.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Describe {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub author: String,
    #[serde(default)]
    pub description: String,
    pub kind: String,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub params: Vec<DescribeParam>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribeParam {
    pub name: String,
    pub kind: String,
    pub default: String,
    #[serde(default)]
    pub doc: String,
}

/// The cycle, as JSON, for `chaos_native_inject`.
#[derive(Serialize)]
struct CycleJson<'a> {
    cycle: u32,
    seed: u64,
    nodes: u32,
    primary: u32,
    writes: u32,
    params: &'a [(String, String)],
}

/// Host functions handed to the plugin. Effects return 0 on success and -1
/// when refused (the reason is recorded in the cycle).
#[repr(C)]
pub struct ChaosHost {
    ctx: *mut c_void,
    log: extern "C" fn(*mut c_void, i32, *const c_char),
    random: extern "C" fn(*mut c_void) -> u64,
    sleep_ms: extern "C" fn(*mut c_void, u32),
    wait_writes: extern "C" fn(*mut c_void, u32) -> u32,
    signal: extern "C" fn(*mut c_void, u32, i32) -> i32,
    pause: extern "C" fn(*mut c_void, u32, u32) -> i32,
    partition: extern "C" fn(*mut c_void, *const c_char, u32) -> i32,
    clock_offset: extern "C" fn(*mut c_void, u32, i64, u32) -> i32,
}

pub struct NativeLib {
    /// A call is running. Native calls cannot be stopped, so a library whose
    /// last call outlived its deadline is not entered again until it returns.
    in_flight: AtomicBool,
    describe: DescribeFn,
    inject: InjectFn,
    free: FreeFn,
    // Last: the fn pointers above are valid while it is loaded.
    _lib: libloading::Library,
}

// Send and Sync by its fields (fn pointers, an atomic, a loaded Library):
// no `unsafe impl` needed. That the library's code may run on any thread is
// part of the opt-in; `in_flight` keeps inject calls from overlapping.

impl NativeLib {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        // SAFETY: loading runs the library's initialisers, code chaos-host
        // cannot check: this is the point where the user's explicit opt-in
        // (`--native-plugin`, unsandboxed by design) is trusted.
        let lib = unsafe { libloading::Library::new(path) }
            .with_context(|| format!("native plugin {}: loading", path.display()))?;
        let sym = |name: &str| -> anyhow::Result<*const ()> {
            // SAFETY: read as a bare address (`*const ()`), which any symbol
            // is; it is copied out, and used only while `lib` stays loaded
            // (it moves into the `NativeLib` with the pointers).
            let s: libloading::Symbol<*const ()> = unsafe { lib.get(name.as_bytes()) }
                .with_context(|| {
                    format!(
                        "native plugin {}: missing symbol {name} (see sdk/native/chaos_native.h)",
                        path.display()
                    )
                })?;
            // A fn pointer may not be NULL, and dlsym can yield one.
            if s.is_null() {
                bail!("native plugin {}: symbol {name} is NULL", path.display());
            }
            Ok(*s)
        };
        // SAFETY: the symbol is non-null (checked in `sym`) and, by
        // chaos_native.h, a C function of exactly this type; a data pointer
        // and a fn pointer have the same size. A library that lies about a
        // signature is past what the opt-in lets chaos-host check.
        let contract: ContractFn = unsafe { std::mem::transmute(sym("chaos_native_contract")?) };
        // SAFETY: as for `contract`: non-null, and of this type by the header.
        let describe: DescribeFn = unsafe { std::mem::transmute(sym("chaos_native_describe")?) };
        // SAFETY: as for `contract`: non-null, and of this type by the header.
        let inject: InjectFn = unsafe { std::mem::transmute(sym("chaos_native_inject")?) };
        // SAFETY: as for `contract`: non-null, and of this type by the header.
        let free: FreeFn = unsafe { std::mem::transmute(sym("chaos_native_free")?) };
        // SAFETY: `contract` is the library's `chaos_native_contract`, which
        // takes nothing and returns NULL or a NUL-terminated string that
        // `cstr` copies at once.
        let version = unsafe { cstr(contract()) };
        if version != ABI {
            bail!(
                "native plugin {}: built against native ABI {version}, but this chaos-host speaks native ABI {ABI} (sdk/native/chaos_native.h)",
                path.display(),
            );
        }
        Ok(Self {
            in_flight: AtomicBool::new(false),
            describe,
            inject,
            free,
            _lib: lib,
        })
    }

    pub fn describe(&self, path: &Path) -> anyhow::Result<Describe> {
        // SAFETY: `describe` is `chaos_native_describe`, alive while
        // `self._lib` is loaded; it returns NULL or a NUL-terminated string
        // that `cstr` copies at once.
        let text = unsafe { cstr((self.describe)()) };
        serde_json::from_str(&text).with_context(|| {
            format!(
                "native plugin {}: chaos_native_describe() JSON",
                path.display()
            )
        })
    }
}

/// An owned copy of a C string from the plugin ("" for NULL).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that stays valid and
/// unchanged for the duration of this call.
unsafe fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: `p` is not NULL, and the caller vouches for the rest.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Per-call state behind `ChaosHost::ctx`.
struct Ctx {
    effects: Arc<Effects>,
    set_up: Option<chaos_effects::SetUp>,
    handle: tokio::runtime::Handle,
    grants: Grants,
    declared: Vec<Capability>,
    rng: ChaCha8Rng,
    label: String,
    log_lines: u32,
    denials: Vec<String>,
    /// Set when the call passed its deadline: from then on every host
    /// function refuses, so a runaway plugin can no longer act.
    abandoned: Arc<AtomicBool>,
}

impl Ctx {
    /// Run an effect on the cycle's runtime, recorded as this plugin's.
    fn effect_call<F: std::future::Future>(&self, effect: F) -> F::Output {
        self.handle
            .block_on(chaos_effects::ASKED_BY.scope(self.label.clone(), effect))
    }

    fn gone(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
    }

    fn effect(&mut self, cap: Capability, f: impl FnOnce(&mut Self) -> Result<(), String>) -> i32 {
        if self.gone() {
            return -1;
        }
        let r = self.grants.allow(cap, &self.declared).and_then(|_| f(self));
        match r {
            Ok(()) => 0,
            Err(e) => {
                self.denials.push(e);
                -1
            }
        }
    }
}

/// The `Ctx` behind a host function's `ctx` argument.
///
/// # Safety
/// `p` is the `ctx` of the `ChaosHost` handed to a `chaos_native_inject`
/// that has not returned yet (the `Ctx` lives on that call's thread until
/// then), and no other reference to that `Ctx` is in use while the result
/// is: host functions are called one at a time, on the call's thread, as
/// chaos_native.h requires of the plugin. The result must not outlive the
/// host function that asked for it.
unsafe fn ctx<'a>(p: *mut c_void) -> &'a mut Ctx {
    // SAFETY: the caller guarantees `p` points to a live, unaliased `Ctx`.
    unsafe { &mut *(p as *mut Ctx) }
}

extern "C" fn cb_log(p: *mut c_void, level: i32, msg: *const c_char) {
    // SAFETY: `p` is the plugin's `ctx`, passed back during inject, on its
    // thread, one call at a time (chaos_native.h); the borrow ends here.
    let c = unsafe { ctx(p) };
    if c.gone() {
        return;
    }
    c.log_lines += 1;
    if c.log_lines > MAX_LOG_LINES {
        return;
    }
    // SAFETY: `msg` is NULL or a NUL-terminated string the plugin owns for
    // the duration of this call (chaos_native.h), copied at once.
    let mut m = crate::state::printable(unsafe { cstr(msg) });
    if m.len() > MAX_LOG_BYTES {
        m = clip(m);
    }
    match level {
        l if l >= 3 => tracing::error!(plugin = %c.label, "{m}"),
        2 => tracing::warn!(plugin = %c.label, "{m}"),
        1 => tracing::info!(plugin = %c.label, "{m}"),
        _ => tracing::debug!(plugin = %c.label, "{m}"),
    }
}

extern "C" fn cb_random(p: *mut c_void) -> u64 {
    // SAFETY: `p` is the plugin's `ctx`, passed back during inject, on its
    // thread, one call at a time (chaos_native.h); the borrow ends here.
    unsafe { ctx(p) }.rng.next_u64()
}

extern "C" fn cb_sleep_ms(p: *mut c_void, ms: u32) {
    // SAFETY: `p` is the plugin's `ctx`, passed back during inject, on its
    // thread, one call at a time (chaos_native.h); the borrow ends here.
    let c = unsafe { ctx(p) };
    c.set_up.take();
    if !c.gone() {
        std::thread::sleep(Duration::from_millis(ms as u64));
    }
}

extern "C" fn cb_wait_writes(p: *mut c_void, count: u32) -> u32 {
    // SAFETY: `p` is the plugin's `ctx`, passed back during inject, on its
    // thread, one call at a time (chaos_native.h); the borrow ends here.
    let c = unsafe { ctx(p) };
    c.set_up.take();
    if c.gone() {
        return 0;
    }
    let mut rx = c.effects.progress();
    c.handle.block_on(async move {
        let seen = rx
            .wait_for(|p| p.issued >= count || p.done)
            .await
            .map(|p| p.issued);
        seen.unwrap_or_else(|_| rx.borrow().issued)
    })
}

extern "C" fn cb_signal(p: *mut c_void, node: u32, sig: i32) -> i32 {
    // SAFETY: `p` is the plugin's `ctx`, passed back during inject, on its
    // thread, one call at a time (chaos_native.h); the borrow ends here.
    unsafe { ctx(p) }.effect(Capability::Signal, |c| {
        let sig = match sig {
            9 => Signal::SIGKILL,
            15 => Signal::SIGTERM,
            other => return Err(format!("signal {other}: only 9 (KILL) and 15 (TERM)")),
        };
        c.effect_call(c.effects.clone().signal(node, sig))
    })
}

extern "C" fn cb_pause(p: *mut c_void, node: u32, ms: u32) -> i32 {
    // SAFETY: `p` is the plugin's `ctx`, passed back during inject, on its
    // thread, one call at a time (chaos_native.h); the borrow ends here.
    unsafe { ctx(p) }.effect(Capability::Pause, |c| {
        c.effect_call(c.effects.clone().pause(node, ms))
    })
}

extern "C" fn cb_partition(p: *mut c_void, grudge: *const c_char, ms: u32) -> i32 {
    // SAFETY: `p` is the plugin's `ctx`, passed back during inject, on its
    // thread, one call at a time (chaos_native.h); the borrow ends here.
    unsafe { ctx(p) }.effect(Capability::Partition, |c| {
        // SAFETY: `grudge` is NULL or a NUL-terminated string the plugin
        // owns for the duration of this call (chaos_native.h), copied at once.
        let text = unsafe { cstr(grudge) };
        let g: Vec<Vec<u32>> = serde_json::from_str(&text)
            .map_err(|e| format!("partition: grudge JSON {text:?}: {e}"))?;
        c.effect_call(c.effects.clone().partition(g, ms))
    })
}

extern "C" fn cb_clock_offset(p: *mut c_void, node: u32, offset: i64, ms: u32) -> i32 {
    // SAFETY: `p` is the plugin's `ctx`, passed back during inject, on its
    // thread, one call at a time (chaos_native.h); the borrow ends here.
    unsafe { ctx(p) }.effect(Capability::Clock, |c| {
        c.effect_call(c.effects.clone().clock_offset(node, offset, ms))
    })
}

/// Everything one native inject needs.
pub struct Call {
    pub label: String,
    pub cycle: CycleInfo,
    pub params: Vec<(String, String)>,
    pub grants: Grants,
    pub declared: Vec<Capability>,
}

/// Run `chaos_native_inject` on a blocking thread, bounded by `deadline`.
pub async fn inject(
    lib: Arc<NativeLib>,
    call: Call,
    effects: Arc<Effects>,
    set_up: chaos_effects::SetUp,
    deadline: Duration,
) -> (Result<(), PluginError>, Vec<String>) {
    let label = call.label.clone();
    let json = serde_json::to_string(&CycleJson {
        cycle: call.cycle.cycle,
        seed: call.cycle.seed,
        nodes: call.cycle.nodes,
        primary: call.cycle.primary,
        writes: call.cycle.writes,
        params: &call.params,
    })
    .unwrap_or_default();
    if lib.in_flight.swap(true, Ordering::AcqRel) {
        return (
            Err(PluginError::Returned {
                plugin: label,
                phase: "inject",
                reason: "its previous call has not returned yet (native calls cannot be stopped); cycle skipped".into(),
            }),
            vec![],
        );
    }
    let handle = tokio::runtime::Handle::current();
    let abandoned = Arc::new(AtomicBool::new(false));
    let gone = abandoned.clone();
    let (tx, task) = tokio::sync::oneshot::channel();
    // A plain thread, not the blocking pool: a call that never returns must
    // not keep the runtime from shutting down.
    let spawned = std::thread::Builder::new()
        .name(format!("native {label}"))
        .spawn(move || {
            let mut ctx = Ctx {
                effects,
                set_up: Some(set_up),
                handle,
                grants: call.grants,
                declared: call.declared,
                rng: ChaCha8Rng::seed_from_u64(call.cycle.seed),
                label: call.label,
                log_lines: 0,
                denials: vec![],
                abandoned: gone,
            };
            let host = ChaosHost {
                ctx: &mut ctx as *mut Ctx as *mut c_void,
                log: cb_log,
                random: cb_random,
                sleep_ms: cb_sleep_ms,
                wait_writes: cb_wait_writes,
                signal: cb_signal,
                pause: cb_pause,
                partition: cb_partition,
                clock_offset: cb_clock_offset,
            };
            let cycle = CString::new(json).unwrap_or_default();
            // SAFETY: `inject` is `chaos_native_inject`, kept loaded by the
            // `Arc<NativeLib>` this thread owns; `cycle` and `host` (and the
            // `ctx` it points to) live on this frame past the call, and `ctx`
            // is not touched here until the call returns.
            let err = unsafe { (lib.inject)(cycle.as_ptr(), &host) };
            let message = (!err.is_null()).then(|| {
                // SAFETY: a non-NULL `err` is the plugin's NUL-terminated
                // message, valid until it is freed just below.
                let m = unsafe { cstr(err) };
                // SAFETY: `err` came from this library's inject and is freed
                // once, here; `m` is an owned copy.
                unsafe { (lib.free)(err) };
                m
            });
            lib.in_flight.store(false, Ordering::Release);
            let _ = tx.send((message, ctx.denials));
        });
    if let Err(e) = spawned {
        return (
            Err(PluginError::Trap {
                plugin: label,
                phase: "inject",
                reason: format!("starting the native call: {e}"),
            }),
            vec![],
        );
    }
    match tokio::time::timeout(deadline, task).await {
        Ok(Ok((None, denials))) => (Ok(()), denials),
        Ok(Ok((Some(m), denials))) => (
            Err(PluginError::Returned {
                plugin: label,
                phase: "inject",
                reason: clip(m),
            }),
            denials,
        ),
        Ok(Err(_)) => (
            Err(PluginError::Trap {
                plugin: label,
                phase: "inject",
                reason: "the native call ended without a result".into(),
            }),
            vec![],
        ),
        // The thread cannot be stopped: it is not sandboxed. From now on
        // its host functions refuse, and its effects are undone by the host
        // all the same.
        Err(_) => {
            abandoned.store(true, Ordering::Relaxed);
            (
                Err(PluginError::Timeout {
                    plugin: label,
                    phase: "inject",
                    ms: deadline.as_millis(),
                }),
                vec![],
            )
        }
    }
}
