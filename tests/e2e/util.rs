//! Helpers: a temp dir per test, campaign files pointing at the built
//! binaries, running chaos-host, and the leak check every test ends with.

use std::path::{Path, PathBuf};
use std::process::Output;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Where this build's binaries are (chaos-host, quorum-kv, the native
/// test plugin): beside the chaos-host under test, so a `CARGO_TARGET_DIR`
/// elsewhere is followed.
pub fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_chaos-host"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The component built from source for guest crate `name` (under
/// plugins/, examples/plugins/ or tests/guests/), by the test-components
/// build script.
fn built(name: &str) -> PathBuf {
    let p = PathBuf::from(
        test_components::path(name).unwrap_or_else(|| panic!("no guest crate named {name}")),
    );
    assert!(p.exists(), "{} missing", p.display());
    p
}

/// plugins/NAME built from source.
pub fn plugin(name: &str) -> PathBuf {
    built(name)
}

/// examples/plugins/NAME built from source.
pub fn example_plugin(name: &str) -> PathBuf {
    built(name)
}

/// The built plugins `names`, as paths for `--plugin`.
pub fn plugin_paths(names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| plugin(n).to_string_lossy().into_owned())
        .collect()
}

/// The reference campaign (correct or buggy), rewritten with absolute paths
/// and `edit` applied, written into `dir`.
pub fn campaign(dir: &Path, buggy: bool, edit: impl Fn(String) -> String) -> PathBuf {
    let kv = bin_dir().join("quorum-kv");
    assert!(kv.exists(), "{} missing: run cargo build", kv.display());
    let rel = if buggy {
        "reference/campaign-buggy.toml"
    } else {
        "reference/campaign.toml"
    };
    example_campaign(dir, rel, |t| {
        edit(t.replace("../../target/debug/quorum-kv", kv.to_str().unwrap()))
    })
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub out: PathBuf,
}

impl Run {
    pub fn summary(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.out.join("summary.json"))
            .unwrap_or_else(|e| panic!("no summary.json ({e}); stderr:\n{}", self.stderr));
        serde_json::from_str(&text).unwrap()
    }

    pub fn cycles(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.out.join("cycles.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is complete JSON"))
            .collect()
    }
}

/// Run chaos-host with `args`, output under `dir/out`, and check that no
/// process started under `dir` survives it.
pub fn chaos(dir: &Path, args: &[&str]) -> Run {
    chaos_env(dir, args, &[])
}

/// [`chaos`] with extra environment.
pub fn chaos_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = dir.join("out");
    let Output {
        status,
        stdout,
        stderr,
    } = std::process::Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .args(args)
        .arg("--out")
        .arg(&out)
        .env("RUST_BACKTRACE", "0")
        .env("CHAOS_LOG", "warn")
        .env("CHAOS_STATE_DIR", dir.join("state"))
        .envs(env.iter().copied())
        .output()
        .expect("running chaos-host");
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        out,
    };
    let leaked = processes_mentioning(dir);
    assert!(
        leaked.is_empty(),
        "processes left behind: {leaked:?}\nstderr:\n{}",
        run.stderr
    );
    if let Some(id) = run_id(&run.stderr) {
        assert_no_network_state(&id);
    }
    run
}

/// The run id chaos-host printed when it started.
pub fn run_id(stderr: &str) -> Option<String> {
    let at = stderr.find(", run ")?;
    Some(
        stderr[at + 6..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect(),
    )
}

/// Network namespaces of run `id` that still exist.
pub fn namespaces_of(id: &str) -> Vec<String> {
    let prefix = format!("chs-{id}-");
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// No namespace (and so no nftables table, which lives in them) of run `id`.
pub fn assert_no_network_state(id: &str) {
    let left = namespaces_of(id);
    assert!(left.is_empty(), "network namespaces left behind: {left:?}");
}

/// Processes under `dir` in the stopped state.
pub fn stopped_processes_mentioning(dir: &Path) -> Vec<u32> {
    processes_mentioning(dir)
        .into_iter()
        .filter(|(pid, _)| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('T'))
                })
                .unwrap_or(false)
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// tests/guests/NAME built from source.
pub fn guest(name: &str) -> PathBuf {
    built(name)
}

/// `chaos-host run --campaign CAMPAIGN EXTRA...`, as [`chaos`].
pub fn run_campaign(dir: &Path, campaign: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["run", "--campaign", campaign.to_str().unwrap()];
    args.extend_from_slice(extra);
    chaos(dir, &args)
}

/// Pids of processes whose command line or environment mentions `dir`
/// (every node's data dir is under it; ai-memory gets it only through
/// `HOME` and `AI_MEMORY_DB`).
pub fn processes_mentioning(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let env = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        if cmd.contains(&needle) || String::from_utf8_lossy(&env).contains(&needle) {
            found.push((pid, cmd));
        }
    }
    found
}

/// An example campaign (`examples/REL`) with its built-in assertion
/// replaced by the plugin built from source (plugins/convergence, by
/// absolute path) and `edit` applied, written into `dir`.
pub fn example_campaign(dir: &Path, rel: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(root().join("examples").join(rel))
        .unwrap()
        .replace(
            "assertions = [\"convergence\"]",
            &format!(
                "assertions = [{:?}]",
                plugin("convergence").to_str().unwrap()
            ),
        );
    let path = dir.join("campaign.toml");
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// `program` is on PATH, or the test says how to install it.
pub fn require(program: &str, install: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()));
    assert!(found, "{program} is not installed: {install}");
}

/// Run the `misbehave` test guest in `mode` on the correct reference system
/// (granted pause, partition, signal and restart), with `edit` applied to the
/// campaign and `extra` arguments.
pub fn run_misbehave(
    dir: &Path,
    mode: &str,
    edit: impl Fn(String) -> String,
    extra: &[&str],
) -> Run {
    let c = campaign(dir, false, |t| {
        edit(
            format!("{t}\n[params.misbehave]\nmode = \"{mode}\"\n").replace(
                "[grants]\n",
                "[grants]\nmisbehave = [\"pause\", \"partition\", \"signal\", \"restart\"]\n",
            ),
        )
    });
    let g = guest("misbehave");
    let mut args = vec!["--plugin", g.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_campaign(dir, &c, &args)
}

pub fn journals(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir.join("state"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The text of every journal in `dir/state`, run's entries one per line.
pub fn journal_text(dir: &Path) -> String {
    journals(dir)
        .iter()
        .map(|j| std::fs::read_to_string(dir.join("state").join(j)).unwrap_or_default())
        .collect()
}

/// No node process (stopped or not), no journal and, for run `id`, no
/// namespace or table left.
pub fn assert_nothing_left(dir: &Path, id: Option<&str>) {
    if let Some(id) = id {
        assert_no_network_state(id);
    }
    let left = processes_mentioning(dir);
    assert!(left.is_empty(), "processes left: {left:?}");
    assert!(stopped_processes_mentioning(dir).is_empty());
    assert!(journals(dir).is_empty(), "{:?}", journals(dir));
}

/// A seed from the clock, for schedules a test prints when it fails.
pub fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1
}

/// chaos-host with `args` in the background, its journal in `dir/state`
/// and its stderr in `dir/LOG`.
pub fn spawn_chaos(dir: &Path, args: &[&str], log: &str) -> std::process::Child {
    let log = std::fs::File::create(dir.join(log)).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env("CHAOS_LOG", "warn")
        .env("CHAOS_STATE_DIR", dir.join("state"))
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// The hand-written component `tests/guests/FILE.wat`, `edit` applied to
/// its text, compiled into `dir/OUT.wasm`.
pub fn wat_guest(dir: &Path, file: &str, out: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let src = root().join("tests/guests").join(file);
    let text = std::fs::read_to_string(&src).unwrap();
    let bytes = wat::parse_str(edit(text)).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let path = dir.join(format!("{out}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `inject` of a [`wat_fault`] that returns ok at once.
pub const INJECT_OK: &str = "(i32.store8 (i32.const 1536) (i32.const 0)) (i32.const 1536)";

/// A fault component (`tests/guests/fault.wat`) whose `describe()` gives
/// `name` and whose core `inject` body is `inject`, at `dir/OUT.wasm`.
pub fn wat_fault(dir: &Path, out: &str, name: &str, inject: &str) -> PathBuf {
    wat_guest(dir, "fault.wat", out, |t| {
        t.replace("{name_len}", &name.len().to_string())
            .replace("{name}", name)
            .replace("{inject}", inject)
    })
}
