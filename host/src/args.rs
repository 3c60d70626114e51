//! Raw command-line arguments.

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "chaos-host",
    version,
    about = "Fault injection for replicated systems, with faults and assertions as sandboxed WebAssembly plugins",
    after_help = "Exit status: 0 every fault class passed, 1 a class failed, 2 usage or harness error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing syntax), e.g. `info`, `debug`, `chaos_host=debug`.
    #[arg(long, global = true, env = "CHAOS_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a campaign: every fault plugin is a class, run for N cycles.
    Run(Box<RunArgs>),
    /// Print what a plugin says about itself, its contract and its sha256.
    Inspect(InspectArgs),
    /// Built-in plugins, and plugins as OCI artifacts: list, push.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Rebuild report.html and junit.xml of an --out dir from its
    /// cycles.jsonl.
    Report(ReportArgs),
    /// Undo what killed chaos-host runs left behind: node processes,
    /// stopped processes, nftables tables, network namespaces.
    Cleanup,
    /// One node of the reference system (quorum-kv), for the embedded
    /// default campaign: takes quorum-kv's arguments.
    #[command(hide = true)]
    ReferenceNode {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Patch the vDSO clock of these pids (the ptrace helper of a clock
    /// skew, run by chaos-host itself; see effects/vdso.rs).
    #[command(hide = true)]
    ClockPatch { pids: Vec<i32> },
    /// Hold a clock offset on process group PGID of this machine until
    /// stdin closes, patching processes that appear meanwhile (a clock
    /// lease on a remote host, run there by chaos-host over SSH; see
    /// effects/clock.rs).
    #[command(hide = true, allow_negative_numbers = true)]
    ClockLease { pgid: i32, step_ns: i64, ppm: i64 },
    /// Mount the FUSE disk layer of BACKING at MOUNTPOINT on this machine
    /// and serve a node's disk leases as JSON lines on stdin and stdout
    /// until `unmount` or EOF (a remote node's disk layer, run there by
    /// chaos-host over SSH; see remote/disk.rs).
    #[command(hide = true)]
    DiskLayer {
        backing: PathBuf,
        mountpoint: PathBuf,
    },
    /// Rerun one recorded cycle exactly (its seed, parameters and plugins,
    /// which must not have changed) and print its verdict beside the
    /// recorded one. Exit 0 when the verdict is reproduced, 1 when not.
    Replay(ReplayArgs),
    /// Merge the --out dirs of the shards of one campaign (`run --shard
    /// I/N`) into one: cycles.jsonl in cycle order, summary.json,
    /// report.html and junit.xml. Exit status: the merged verdict.
    Merge(MergeArgs),
    /// Create a plugin crate, ready to build with
    /// `cargo build --release --target wasm32-wasip2`.
    NewPlugin(NewPluginArgs),
    /// Export the histories of an --out dir: `--format edn` writes each
    /// cycle's history as Jepsen EDN (history.edn beside history.jsonl).
    Export(ExportArgs),
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The --out directory of a run.
    pub dir: PathBuf,
    #[arg(long, value_enum, default_value = "edn")]
    pub format: crate::export::Format,
}

#[derive(Args, Debug)]
pub struct NewPluginArgs {
    /// Plugin name: lowercase letters, digits, '_'.
    pub name: String,
    /// An assertion plugin instead of a fault.
    #[arg(long, conflicts_with = "client")]
    pub assertion: bool,
    /// A client component (it carries the cycle's operations to the
    /// system) instead of a fault, with a campaign that uses it.
    #[arg(long)]
    pub client: bool,
    /// Where to create it (a directory NAME is made inside).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Depend on a local chaos-host-sdk (the sdk/ directory of a chaos-host
    /// checkout) by path, for SDK development. Default: the published
    /// chaos-host-sdk of this host's newest contract (`chaos-host-sdk = "0.3"`).
    #[arg(long)]
    pub sdk: Option<PathBuf>,
}

/// Saved as `run.json` in the --out dir (paths absolute, seed resolved), so
/// `--resume DIR` finishes the same campaign.
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct RunArgs {
    /// Finish the campaign of an earlier run whose --out dir is DIR (e.g.
    /// after chaos-host was killed): the same campaign, plugins and seed
    /// from DIR/run.json; completed cycles are kept, the rest run. Takes no
    /// other run argument.
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with_all = [
            "campaign", "plugin", "native_plugin", "plugin_dir", "allow", "param",
            "cycles", "writes", "settle_ms", "net", "seed", "update_lock", "parallel",
            "shard",
        ]
    )]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// sha256 of the campaign file, saved in run.json: a resume refuses a
    /// campaign that changed since the run started.
    #[arg(skip)]
    #[serde(default)]
    pub campaign_sha256: Option<String>,
    /// sha256 of every plugin by name, saved in run.json: a resume or a
    /// replay refuses a plugin that changed.
    #[arg(skip)]
    #[serde(default)]
    pub plugin_sha256: std::collections::BTreeMap<String, String>,
    /// Every OCI reference of the run and the digest it resolved to, saved
    /// in run.json: a resume or a replay pulls these digests, so a tag
    /// moved since cannot change a recorded cycle.
    #[arg(skip)]
    #[serde(default)]
    pub oci: std::collections::BTreeMap<String, chaos_model::plugin_ref::Pin>,
    /// The campaign file (TOML) describing the system under test. Without
    /// it, the embedded reference campaign runs: the reference system
    /// (quorum-kv, 3 nodes, W=2), served by this binary.
    #[arg(long)]
    pub campaign: Option<PathBuf>,
    /// A fault or assertion plugin, repeatable: a built-in's name
    /// (`chaos-host plugin list`), a .wasm component file, or an OCI
    /// artifact `oci://HOST[:PORT]/REPOSITORY:TAG` (or `@sha256:DIGEST`).
    #[arg(long, value_name = "PLUGIN")]
    pub plugin: Vec<String>,
    /// A native fault plugin (shared library with the C ABI of
    /// sdk/native/chaos_native.h). NOT sandboxed: it runs with chaos-host's
    /// privileges; only for faults a component cannot express. Repeatable.
    #[arg(long, value_name = "LIB.so")]
    pub native_plugin: Vec<PathBuf>,
    /// A directory of plugins: every `.wasm` in it is loaded (sorted by
    /// name), e.g. a folder shared between projects; repeatable.
    #[arg(long, value_name = "DIR")]
    pub plugin_dir: Vec<PathBuf>,
    /// Grant capabilities: PLUGIN=CAP[,CAP...] (signal, pause, partition, clock).
    #[arg(long, value_name = "PLUGIN=CAPS")]
    pub allow: Vec<String>,
    /// Set a plugin parameter: PLUGIN.PARAM=VALUE (overrides the campaign's
    /// [params.PLUGIN]), e.g. --param drop_random_acks.ms=5000; repeatable.
    #[arg(long, value_name = "PLUGIN.PARAM=VALUE")]
    pub param: Vec<String>,
    /// Cycles per fault class (overrides campaign.cycles).
    #[arg(long)]
    pub cycles: Option<u32>,
    /// Writes per cycle (overrides burst.writes).
    #[arg(long)]
    pub writes: Option<u32>,
    /// Settle time after the burst, ms (overrides burst.settle_ms).
    #[arg(long)]
    pub settle_ms: Option<u64>,
    /// Network between nodes (overrides network.mode): loopback, proxy
    /// (partitions without privileges) or netns (partitions with nftables;
    /// root).
    #[arg(long, value_enum)]
    pub net: Option<chaos_model::network::Mode>,
    /// Place the nodes on the remote hosts FILE lists (`[[host]]` tables,
    /// as under `[hosts]` in a campaign; overrides the campaign's), over SSH.
    #[arg(long, value_name = "FILE")]
    #[serde(default)]
    pub hosts: Option<PathBuf>,
    /// Accept OCI tags that moved since chaos.lock pinned them, and record
    /// their new digests (review the new artifacts first).
    #[arg(long)]
    #[serde(default)]
    pub update_lock: bool,
    /// Campaign seed; replays the same plugin decisions.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Run K cycles of a class at once (1 to 64; default 1), each with its
    /// own nodes, ports, data dirs and network. Records and reports are the
    /// same as with K = 1, in cycle order.
    #[arg(long, value_name = "K")]
    #[serde(default)]
    pub parallel: Option<u32>,
    /// Run only shard I of N (1-based): cycle n of every class belongs to
    /// shard ((n-1) mod N)+1, with the seed the unsharded run gives it.
    /// Combine the shards' --out dirs with `chaos-host merge`.
    #[arg(long, value_name = "I/N")]
    #[serde(default)]
    pub shard: Option<crate::shard::Shard>,
    /// Directory for cycles.jsonl, summary.json and evidence.
    #[arg(long, default_value = "chaos-out")]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The --out directory of the run that recorded the cycle.
    pub dir: PathBuf,
    /// The fault class (its plugin's name; `none` for the baseline).
    #[arg(long)]
    pub class: String,
    /// The cycle number, as recorded in cycles.jsonl.
    #[arg(long)]
    pub cycle: u32,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The --out dirs of every shard (`chaos-host run --shard I/N`), in any
    /// order.
    #[arg(required = true, value_name = "SHARD_DIR")]
    pub dirs: Vec<PathBuf>,
    /// Where the merged run is written.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The --out directory of a run.
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The plugin: a .wasm component, a built-in's name or an oci://
    /// reference.
    #[arg(value_name = "PLUGIN")]
    pub file: String,
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// The built-in plugins (compiled into this binary): name, kind,
    /// version, contract, capabilities, sha256 and what each does.
    List,
    /// Push a plugin (a .wasm file or a built-in's name) to an OCI registry
    /// as a wasm component artifact; prints the manifest digest. The plugin
    /// is loaded first: only a working chaos plugin is pushed.
    Push(PushArgs),
}

#[derive(Args, Debug)]
pub struct PushArgs {
    /// The plugin: a .wasm component or a built-in's name.
    #[arg(value_name = "FILE_OR_BUILTIN")]
    pub plugin: String,
    /// Where: oci://HOST[:PORT]/REPOSITORY:TAG (loopback registries over
    /// plain HTTP, others HTTPS unless listed in CHAOS_OCI_INSECURE).
    #[arg(value_name = "OCI_REFERENCE")]
    pub reference: String,
}
