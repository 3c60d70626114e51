//! Engine, linker, loading and sandboxed calls.

use super::grants::{self, Grants};
use super::identity::check_name;
use super::limits::{InstanceLimits, LimitExceeded};
use super::native::{self, NativeLib};
use super::observations::{CycleInfo, Observations};
pub use super::state::{PluginError, PluginState, clip};
use super::wasi;
use super::wit;
use anyhow::{Context, bail};
use chaos_effects::Effects;
use chaos_model::contract::Capability;
use chaos_model::contract::Info;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, UpdateDeadline};

/// Instructions (roughly) one call may execute.
pub const FUEL_PER_CALL: u64 = 2_000_000_000;
/// Fuel between yields to the async executor, so a busy plugin cannot hold
/// a worker thread and its deadline can fire.
pub(crate) const FUEL_YIELD: u64 = 5_000_000;
/// Deadline for `describe()`.
const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the engine's epoch advances: running wasm checks its
/// wall-clock deadline this often.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// How long after its deadline a call is dropped while it waits in a host
/// function (`sleep_ms`, `wait_writes`), where no wasm runs to see the
/// epoch. Running wasm is stopped by the epoch first, with a clearer reason.
pub(crate) const BACKSTOP_GRACE: Duration = Duration::from_millis(100);

/// A plugin call ran past its deadline while executing wasm: raised from
/// the epoch callback, so the trap says why.
#[derive(Debug, thiserror::Error)]
#[error("wall-clock deadline of {ms} ms passed (stopped by the epoch interrupt)")]
pub(crate) struct WallClockDeadline {
    pub(crate) ms: u128,
}

/// What `describe()` said, in host terms.
#[derive(Clone, Debug, Serialize)]
pub struct PluginMeta {
    pub name: String,
    pub version: String,
    pub author: String,
    pub description: String,
    pub kind: &'static str,
    pub contract: String,
    pub capabilities: Vec<&'static str>,
    pub params: Vec<ParamMeta>,
    pub sha256: String,
    /// false for `--native-plugin` libraries: they run with chaos-host's
    /// full privileges.
    pub sandboxed: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ParamMeta {
    pub name: String,
    pub kind: &'static str,
    pub default: String,
    pub doc: String,
}

impl PluginMeta {
    pub fn label(&self) -> String {
        if self.sandboxed {
            format!("{}@{}", self.name, self.version)
        } else {
            format!("{}@{} [native, UNSANDBOXED]", self.name, self.version)
        }
    }
}

pub(crate) enum Pre {
    Wasm(wit::Pre),
    Native(Arc<NativeLib>),
}

/// A loaded, pre-instantiated plugin with its grants and parameters.
pub struct Loaded {
    pub path: PathBuf,
    pub meta: PluginMeta,
    declared: Vec<Capability>,
    grants: Grants,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) pre: Pre,
    pub(crate) engine: Engine,
    /// Fuel one call may burn ([`FUEL_PER_CALL`] unless the campaign sets
    /// `campaign.assertion_fuel`).
    pub(crate) fuel: u64,
}

/// Where compiled components are cached: `CHAOS_CACHE_DIR` (`off` turns
/// the cache off), else `$XDG_CACHE_HOME/chaos-host/wasm`, else
/// `~/.cache/chaos-host/wasm`. Keyed by wasmtime on the component's bytes
/// and the engine's settings, so a second run of a campaign does not
/// recompile its plugins.
pub fn cache_dir() -> Option<PathBuf> {
    match std::env::var_os("CHAOS_CACHE_DIR") {
        Some(d) if d == "off" => None,
        Some(d) => Some(PathBuf::from(d)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|c| c.join("chaos-host").join("wasm")),
    }
}

fn compile_cache(dir: Option<PathBuf>) -> Option<wasmtime::Cache> {
    let dir = dir?;
    let mut config = wasmtime::CacheConfig::new();
    config.with_directory(&dir);
    match wasmtime::Cache::new(config) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("compiled-plugin cache at {} disabled: {e:#}", dir.display());
            None
        }
    }
}

pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginState>,
}

impl Runtime {
    pub fn new() -> anyhow::Result<Self> {
        Self::with_cache_dir(cache_dir())
    }

    /// A runtime caching compiled plugins in `dir` (`None`: no cache).
    pub fn with_cache_dir(dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        // Fuel bounds the work of a call, the epoch its wall-clock time: one
        // unit of fuel can cost a nanosecond or a cache miss's hundred, and
        // the executor's timeout is only polled when fuel yields.
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true);
        config.cache(compile_cache(dir));
        let engine = Engine::new(&config)?;
        start_epoch_ticker(&engine)?;
        let mut linker = Linker::new(&engine);
        // WASI is linked so std-built guests instantiate; what it may reach
        // is set per call in `wasi::context`.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wit::add_to_linker(&mut linker)?;
        Ok(Self { engine, linker })
    }

    /// Load `path`, check its contract version and call `describe()`. The
    /// plugin can do nothing until [`Loaded::authorize`] gives it grants.
    pub async fn load(&self, path: &Path) -> anyhow::Result<Loaded> {
        let bytes = crate::source::read_plugin_file(path, "plugin")?;
        self.load_bytes(&path.display().to_string(), bytes).await
    }

    /// [`Runtime::load`] for a component from elsewhere (a built-in, an
    /// OCI artifact); `origin` names it in messages.
    pub async fn load_bytes(&self, origin: &str, bytes: Vec<u8>) -> anyhow::Result<Loaded> {
        let path = Path::new(origin);
        let sha256 = hex(&Sha256::digest(&bytes));
        // The claimed version first: one this host does not speak is
        // refused before compiling anything.
        let section =
            wit::section_version(&bytes).with_context(|| format!("plugin {}", path.display()))?;
        let component = Component::new(&self.engine, &bytes).map_err(|e| {
            anyhow::anyhow!(
                "plugin {}: not a WebAssembly component ({}) (build plugins with `cargo build --release --target wasm32-wasip2`)",
                path.display(),
                e.root_cause()
            )
        })?;
        let (kind, contract) = wit::detect(&self.engine, section, &component)
            .with_context(|| format!("plugin {}", path.display()))?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow::anyhow!("plugin {}: linking: {}", path.display(), e))?;
        let pre = wit::Pre::new(kind, contract, pre)
            .with_context(|| format!("plugin {}", path.display()))?;
        let pre = Pre::Wasm(pre);
        let mut loaded = Loaded {
            path: path.to_path_buf(),
            meta: PluginMeta {
                name: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                version: String::new(),
                author: String::new(),
                description: String::new(),
                kind,
                contract: contract.to_string(),
                capabilities: vec![],
                params: vec![],
                sha256,
                sandboxed: true,
            },
            declared: vec![],
            grants: Grants::default(),
            params: vec![],
            pre,
            engine: self.engine.clone(),
            fuel: FUEL_PER_CALL,
        };
        let info = loaded.describe().await?;
        check_name(path, &info.name)?;
        loaded.meta.name = info.name.clone();
        loaded.meta.version = info.version.clone();
        loaded.meta.author = info.author.clone();
        loaded.meta.description = info.description.clone();
        loaded.meta.capabilities = info.capabilities.iter().map(|&c| grants::name(c)).collect();
        loaded.meta.params = info
            .params
            .iter()
            .map(|p| ParamMeta {
                name: p.name.clone(),
                kind: p.kind,
                default: p.default.clone(),
                doc: p.doc.clone(),
            })
            .collect();
        let kind_declared = info.kind;
        if kind_declared != kind {
            bail!(
                "plugin {}: describe() says it is an {kind_declared} but the component exports the {kind} interface",
                loaded.meta.label()
            );
        }
        loaded.declared = info.capabilities.clone();
        loaded.params = resolve_params(&loaded.meta, vec![])?;
        Ok(loaded)
    }
}

impl Runtime {
    /// Load a native plugin (`--native-plugin`): not sandboxed, opt-in.
    pub fn load_native(&self, path: &Path) -> anyhow::Result<Loaded> {
        let bytes = crate::source::read_plugin_file(path, "native plugin")?;
        let lib = NativeLib::open(path)?;
        let d = lib.describe(path)?;
        check_name(path, &d.name)?;
        if d.kind != "fault" {
            bail!(
                "native plugin {}: kind {:?}: only faults may be native (assertions need no privileges; write them as components)",
                path.display(),
                d.kind
            );
        }
        let declared = d
            .capabilities
            .iter()
            .map(|c| grants::parse(c))
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| format!("native plugin {}: capabilities", path.display()))?;
        let mut params = Vec::new();
        for p in &d.params {
            let kind = match p.kind.as_str() {
                "integer" => "integer",
                "float" => "float",
                "boolean" => "boolean",
                "text" => "text",
                other => bail!(
                    "native plugin {}: parameter {}: kind {other:?} is not integer, float, boolean or text",
                    path.display(),
                    p.name
                ),
            };
            params.push(ParamMeta {
                name: p.name.clone(),
                kind,
                default: p.default.clone(),
                doc: p.doc.clone(),
            });
        }
        let mut loaded = Loaded {
            path: path.to_path_buf(),
            meta: PluginMeta {
                name: d.name,
                version: d.version,
                author: d.author,
                description: d.description,
                kind: "fault",
                contract: format!("native {}", native::ABI),
                capabilities: declared.iter().map(|&c| grants::name(c)).collect(),
                params,
                sha256: hex(&Sha256::digest(&bytes)),
                sandboxed: false,
            },
            declared,
            grants: Grants::default(),
            params: vec![],
            pre: Pre::Native(Arc::new(lib)),
            engine: self.engine.clone(),
            fuel: FUEL_PER_CALL,
        };
        loaded.params = resolve_params(&loaded.meta, vec![])?;
        Ok(loaded)
    }
}

impl Loaded {
    /// Give the plugin its grants and campaign parameters; refuse it when it
    /// declares capabilities it was not granted or gets unknown or mistyped
    /// parameters.
    pub fn authorize(
        &mut self,
        grants: Grants,
        params: Vec<(String, toml::Value)>,
    ) -> anyhow::Result<()> {
        grants.check_declared(&self.meta.label(), &self.declared)?;
        self.params = resolve_params(&self.meta, params)?;
        self.grants = grants;
        Ok(())
    }

    pub fn is_fault(&self) -> bool {
        match &self.pre {
            Pre::Wasm(p) => p.is_fault(),
            Pre::Native(_) => true,
        }
    }

    /// Set the fuel one call may burn (`campaign.assertion_fuel`).
    pub fn set_fuel(&mut self, fuel: u64) {
        self.fuel = fuel;
    }

    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// A store for one call: seeded WASI, the instance-wide limits, a fuel
    /// budget and an epoch deadline `deadline` from now.
    fn store(
        &self,
        seed: u64,
        effects: Option<Arc<Effects>>,
        deadline: Duration,
    ) -> anyhow::Result<Store<PluginState>> {
        let state = PluginState {
            wasi: wasi::context(seed),
            table: ResourceTable::new(),
            limits: InstanceLimits::default(),
            label: self.meta.label(),
            grants: self.grants.clone(),
            declared: self.declared.clone(),
            effects,
            set_up: None,
            rng: ChaCha8Rng::seed_from_u64(seed),
            log_lines: 0,
            denials: vec![],
            history: None,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_fuel(self.fuel)?;
        store.fuel_async_yield_interval(Some(FUEL_YIELD))?;
        // Checked at every tick rather than counted in ticks, so a ticker
        // starved of CPU makes the check late, never early or lost.
        let due = Instant::now() + deadline;
        let ms = deadline.as_millis();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= due {
                return Err(WallClockDeadline { ms }.into());
            }
            Ok(UpdateDeadline::Continue(1))
        });
        Ok(store)
    }

    async fn describe(&self) -> anyhow::Result<Info> {
        let mut store = self.store(0, None, DESCRIBE_TIMEOUT)?;
        let label = self.path.display().to_string();
        let call = async {
            match &self.pre {
                Pre::Wasm(pre) => pre.describe(&mut store).await,
                Pre::Native(_) => Err(wasmtime::Error::msg(
                    "native plugins describe themselves at load",
                )),
            }
        };
        match tokio::time::timeout(DESCRIBE_TIMEOUT + BACKSTOP_GRACE, call).await {
            Ok(Ok(info)) => Ok(info),
            Ok(Err(e)) => Err(trap(label, "describe", e).into()),
            Err(_) => Err(PluginError::Timeout {
                plugin: label,
                phase: "describe",
                ms: DESCRIBE_TIMEOUT.as_millis(),
            }
            .into()),
        }
    }

    /// Run `inject` for one cycle. Returns the host's refusals seen during
    /// the call along with the outcome.
    pub async fn inject(
        &self,
        cycle: &CycleInfo,
        effects: Arc<Effects>,
        set_up: chaos_effects::SetUp,
        deadline: Duration,
    ) -> (Result<(), PluginError>, Vec<String>) {
        let label = self.meta.label();
        if let Pre::Native(lib) = &self.pre {
            let call = native::Call {
                label,
                cycle: cycle.clone(),
                params: self.params.clone(),
                grants: self.grants.clone(),
                declared: self.declared.clone(),
            };
            return native::inject(lib.clone(), call, effects, set_up, deadline).await;
        }
        let Pre::Wasm(pre) = &self.pre else {
            unreachable!("native plugins returned above");
        };
        let mut store = match self.store(cycle.seed, Some(effects), deadline) {
            Ok(s) => s,
            Err(e) => return (Err(trap(label, "inject", e)), vec![]),
        };
        store.data_mut().set_up = Some(set_up);
        let call = pre.inject(&mut store, cycle);
        let result = match tokio::time::timeout(deadline + BACKSTOP_GRACE, call).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(reason))) => Err(PluginError::Returned {
                plugin: label,
                phase: "inject",
                reason: clip(reason),
            }),
            Ok(Err(e)) => Err(trap(label, "inject", e)),
            Err(_) => Err(PluginError::Timeout {
                plugin: label,
                phase: "inject",
                ms: deadline.as_millis(),
            }),
        };
        (result, std::mem::take(&mut store.data_mut().denials))
    }

    /// Run `check` on one cycle's observations.
    pub async fn check(
        &self,
        observations: &Observations,
        deadline: Duration,
    ) -> Result<AssertionVerdict, PluginError> {
        let label = self.meta.label();
        let Pre::Wasm(pre) = &self.pre else {
            return Err(PluginError::Returned {
                plugin: label,
                phase: "check",
                reason: "not an assertion plugin".into(),
            });
        };
        let mut store = self
            .store(observations.cycle.seed, None, deadline)
            .map_err(|e| trap(label.clone(), "check", e))?;
        store.data_mut().history = Some(observations.history.clone());
        // The cycle carries the fault's parameters; an assertion reads its
        // own (`[params.<assertion>]`), as `describe()` declared them.
        let own = Observations {
            cycle: CycleInfo {
                params: self.params.clone(),
                ..observations.cycle.clone()
            },
            ..observations.clone()
        };
        let call = pre.check(&mut store, &own);
        match tokio::time::timeout(deadline + BACKSTOP_GRACE, call).await {
            Ok(Ok(Ok(v))) => Ok(AssertionVerdict {
                plugin: label,
                outcome: v.outcome,
                // Bounded: an assertion may not bloat cycles.jsonl.
                reasons: v.reasons.into_iter().take(100).map(clip).collect(),
                figures: v
                    .figures
                    .into_iter()
                    .take(100)
                    .map(|(name, value)| (clip(name), value))
                    .collect(),
            }),
            Ok(Ok(Err(reason))) => Err(PluginError::Returned {
                plugin: label,
                phase: "check",
                reason: clip(reason),
            }),
            // A checker over its budget has not judged: `unknown`, with
            // what it was given, and the campaign goes on (Knossos and
            // porcupine run out of memory on large histories instead).
            Ok(Err(e)) if matches!(e.downcast_ref(), Some(wasmtime::Trap::OutOfFuel)) => {
                Ok(AssertionVerdict {
                    plugin: label,
                    outcome: "unknown",
                    reasons: vec![format!(
                        "out of fuel: the budget of {} instructions (campaign.assertion_fuel) ran out checking a history of {} operations; raise the budget to judge this cycle",
                        self.fuel,
                        observations.history.ops.len()
                    )],
                    figures: vec![
                        ("history_ops".into(), observations.history.ops.len() as f64),
                        ("fuel_budget".into(), self.fuel as f64),
                    ],
                })
            }
            Ok(Err(e)) => Err(trap(label, "check", e)),
            Err(_) => Err(PluginError::Timeout {
                plugin: label,
                phase: "check",
                ms: deadline.as_millis(),
            }),
        }
    }
}

/// An assertion's verdict on one cycle.
#[derive(Clone, Debug, Serialize)]
pub struct AssertionVerdict {
    pub plugin: String,
    pub outcome: &'static str,
    pub reasons: Vec<String>,
    pub figures: Vec<(String, f64)>,
}

pub(crate) fn trap(
    plugin: String,
    phase: &'static str,
    e: impl Into<anyhow::Error>,
) -> PluginError {
    let e: anyhow::Error = e.into();
    // The sandbox's own stops say which limit; otherwise the root cause
    // names the trap (fuel, unreachable) without the wasm backtrace noise.
    let sandbox = e.chain().find_map(|c| {
        c.downcast_ref::<WallClockDeadline>()
            .map(ToString::to_string)
            .or_else(|| c.downcast_ref::<LimitExceeded>().map(ToString::to_string))
    });
    if let Some(reason) = sandbox {
        return PluginError::Trap {
            plugin,
            phase,
            reason,
        };
    }
    let reason = match e.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => "CPU budget exhausted (out of fuel)".to_string(),
        Some(t) => t.to_string(),
        None => format!("{:#}", e)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    };
    PluginError::Trap {
        plugin,
        phase,
        reason,
    }
}

/// Advance `engine`'s epoch every [`EPOCH_TICK`] on one thread, for as long
/// as the engine lives.
fn start_epoch_ticker(engine: &Engine) -> anyhow::Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("chaos-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .context("starting the plugin epoch ticker")?;
    Ok(())
}

/// Campaign values checked against the declared parameters, with defaults
/// filled in.
fn resolve_params(
    meta: &PluginMeta,
    given: Vec<(String, toml::Value)>,
) -> anyhow::Result<Vec<(String, String)>> {
    for (k, _) in &given {
        if !meta.params.iter().any(|p| &p.name == k) {
            let known: Vec<&str> = meta.params.iter().map(|p| p.name.as_str()).collect();
            bail!(
                "params.{}.{k}: plugin {} has no parameter {k:?} (it takes: {})",
                meta.name,
                meta.label(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }
    meta.params
        .iter()
        .map(|p| {
            let value = match given.iter().find(|(k, _)| *k == p.name) {
                None => return Ok((p.name.clone(), p.default.clone())),
                Some((_, v)) => v,
            };
            let text = match value {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let ok = match p.kind {
                "integer" => text.parse::<i64>().is_ok(),
                "float" => text.parse::<f64>().is_ok_and(f64::is_finite),
                "boolean" => text.parse::<bool>().is_ok(),
                _ => true,
            };
            if !ok {
                bail!(
                    "params.{}.{}: {text:?} is not a valid {} ({})",
                    meta.name,
                    p.name,
                    p.kind,
                    p.doc
                );
            }
            Ok((p.name.clone(), text))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
