//! The campaign loop: every fault class for its cycles, recording as it goes.
//!
//! `cycles.jsonl` gets one line per cycle, appended and flushed as the cycle
//! ends; `summary.json` is written (atomically) at the end. Ctrl-C or SIGTERM
//! stop the current cycle: its nodes are killed and reaped and its effects
//! undone before chaos-host exits.

use crate::campaign::Campaign;
use crate::cycle::Cycle;
use crate::journal::{self, Journal};
use crate::metrics::{ClassSummary, CycleRecord, Status, Tally};
use crate::net::{Mode, Network};
use crate::plugin::{Grants, Loaded, Runtime};
use anyhow::{Context, bail};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A validated run: the campaign plus everything the command line changed.
pub struct Plan {
    /// The arguments as saved to `run.json`, for `--resume`.
    pub args: crate::cli::RunArgs,
    /// Finish the run already in `out` instead of starting afresh.
    pub resume: bool,
    /// Run only this cycle of this class (`chaos-host replay`).
    pub only: Option<(String, u32)>,
    pub campaign: Campaign,
    pub plugins: Vec<PathBuf>,
    /// Opt-in, unsandboxed shared libraries.
    pub native_plugins: Vec<PathBuf>,
    pub allow: Vec<(String, String)>,
    pub cycles: u32,
    pub writes: u32,
    pub settle: Duration,
    pub seed: u64,
    pub out: PathBuf,
    pub net: crate::net::Mode,
}

#[derive(Serialize)]
pub struct Summary {
    pub pass: bool,
    pub campaign: String,
    pub system: String,
    pub seed: u64,
    pub run_id: String,
    pub threshold: f64,
    pub cycles_per_class: u32,
    pub writes_per_cycle: u32,
    pub wall_ms: u64,
    pub network: &'static str,
    pub classes: Vec<ClassSummary>,
}

/// Load every plugin, sorting faults from assertions, and authorize each.
pub async fn load_plugins(
    plan: &Plan,
    runtime: &Runtime,
) -> anyhow::Result<(Vec<Loaded>, Vec<Loaded>)> {
    let file = &plan.campaign.file;
    let mut faults = Vec::new();
    let mut assertions = Vec::new();
    let paths = plan.campaign.assertions.iter().chain(&plan.plugins);
    let mut seen = std::collections::HashSet::new();
    // Grants, pins, params, out dirs and results are keyed by name: two
    // files under one name (a copy, a fault and an assertion) are refused.
    let mut names = crate::plugin::Names::default();
    let natives = plan.native_plugins.iter().map(|p| (p, true));
    for (path, native) in paths.map(|p| (p, false)).chain(natives) {
        // The same file named twice (a campaign assertion inside a
        // --plugin-dir) loads once.
        if !seen.insert(std::fs::canonicalize(path).unwrap_or_else(|_| path.clone())) {
            continue;
        }
        let mut p = if native {
            let p = runtime.load_native(path)?;
            eprintln!(
                "chaos-host: WARNING: native plugin {} ({}) is NOT sandboxed: it runs inside chaos-host with all its privileges",
                p.meta.label(),
                path.display()
            );
            p
        } else {
            runtime.load(path).await?
        };
        let name = p.meta.name.clone();
        names.claim(&name, path)?;
        if let Some(pin) = file.pins.get(&name)
            && !pin.eq_ignore_ascii_case(&p.meta.sha256)
        {
            bail!(
                "plugin {}: sha256 {} does not match the pin {pin} in campaign {} [pins].{name}; the file changed: review it, then update the pin",
                path.display(),
                p.meta.sha256,
                plan.campaign.path.display()
            );
        }
        let mut grants = Grants::new(&name);
        for cap in file.grants.get(&name).into_iter().flatten() {
            grants.grant(crate::plugin::grants_parse(cap).with_context(|| {
                format!("campaign {}: grants.{name}", plan.campaign.path.display())
            })?);
        }
        for (who, caps) in &plan.allow {
            if *who == name {
                for cap in caps.split(',') {
                    grants.grant(
                        crate::plugin::grants_parse(cap)
                            .with_context(|| format!("--allow {who}={caps}"))?,
                    );
                }
            }
        }
        let params = file
            .params
            .get(&name)
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        p.authorize(grants, params)
            .with_context(|| format!("plugin {}", path.display()))?;
        if p.is_fault() {
            faults.push(p);
        } else {
            assertions.push(p);
        }
    }
    Ok((faults, assertions))
}

/// Run the whole campaign; returns the summary (also written to `out`).
pub async fn run(plan: &Plan, runtime: &Runtime) -> anyhow::Result<Summary> {
    let (faults, assertions) = load_plugins(plan, runtime).await?;
    let shas: std::collections::BTreeMap<String, String> = faults
        .iter()
        .chain(&assertions)
        .map(|p| (p.meta.name.clone(), p.meta.sha256.clone()))
        .collect();
    // A resumed or replayed run must run the plugins it recorded.
    for (name, saved) in &plan.args.plugin_sha256 {
        match shas.get(name) {
            Some(now) if now == saved => {}
            Some(now) => bail!(
                "plugin {name}: sha256 {now} differs from {saved} recorded in run.json: the plugin changed since the run was recorded, so its cycles cannot be repeated; rebuild the recorded version or start a new run"
            ),
            None => bail!("plugin {name}, recorded in run.json, is not loaded"),
        }
    }
    if assertions.is_empty() {
        tracing::warn!(
            "no assertion plugin: the host's own judge (durability, liveness, effects) decides alone"
        );
    }
    for f in &faults {
        if f.meta.capabilities.contains(&"partition") && plan.net == Mode::Loopback {
            bail!(
                "plugin {}: it partitions the network, but this campaign runs nodes on plain loopback where traffic cannot be cut; set network.mode = \"proxy\" (no privileges) or \"netns\" (root) in the campaign, or pass --net proxy",
                f.meta.name
            );
        }
    }
    let mut shutdown = Shutdown::new()?;
    // Whatever a killed earlier run left behind is undone before we start.
    let state = journal::state_dir();
    for line in journal::recover(&state)? {
        eprintln!("chaos-host: cleanup of an earlier run: {line}");
    }
    std::fs::create_dir_all(&plan.out)
        .with_context(|| format!("creating --out {}", plan.out.display()))?;
    // Two runs (or a resume and the run it resumes) must never append to
    // one cycles.jsonl; the lock goes with the process, however it ends.
    let _lock = lock_out(&plan.out)?;
    if !plan.resume {
        let mut args = plan.args.clone();
        args.plugin_sha256 = shas;
        write_atomic(
            &plan.out.join("run.json"),
            &serde_json::to_vec_pretty(&args)?,
        )?;
    }
    let run_id = format!(
        "{:06x}",
        splitmix(plan.seed ^ std::process::id() as u64 ^ now_nanos()) & 0xff_ffff
    );
    let journal = Arc::new(Journal::create(&state, &run_id)?);
    let network = match Network::create(
        plan.net,
        plan.campaign.file.system.nodes,
        &run_id,
        journal.clone(),
    )
    .await
    {
        Ok(n) => n,
        Err(e) => {
            close_journal(journal);
            return Err(e);
        }
    };
    let result = run_classes(
        plan,
        &faults,
        &assertions,
        &run_id,
        &network,
        &journal,
        &mut shutdown,
    )
    .await;
    network.destroy().await;
    drop(network);
    close_journal(journal);
    // Reports of whatever ran, even when interrupted.
    if plan.out.join("cycles.jsonl").exists()
        && let Err(e) = crate::report::write_files(&plan.out)
    {
        tracing::warn!("writing the reports: {e:#}");
    }
    result
}

fn close_journal(journal: Arc<Journal>) {
    match Arc::try_unwrap(journal) {
        Ok(j) => {
            for line in j.close() {
                tracing::warn!("undone at the end of the run: {line}");
            }
        }
        Err(j) => tracing::warn!(
            "journal {} still in use; left for `chaos-host cleanup`",
            j.path().display()
        ),
    }
}

async fn run_classes(
    plan: &Plan,
    faults: &[Loaded],
    assertions: &[Loaded],
    run_id: &str,
    network: &Network,
    journal: &Arc<Journal>,
    shutdown: &mut Shutdown,
) -> anyhow::Result<Summary> {
    let jsonl_path = plan.out.join("cycles.jsonl");
    let (mut jsonl, done) = if plan.resume {
        resume_jsonl(&jsonl_path)?
    } else {
        let f = std::fs::File::create(&jsonl_path)
            .with_context(|| format!("creating {}", jsonl_path.display()))?;
        (f, Vec::new())
    };
    let work = plan.out.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("clearing {}", work.display()))?;
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(plan.campaign.file.burst.concurrency as usize)
        // Every cycle has new ports, so an idle connection is never reused
        // by a later cycle: without this the pool holds 90 s of dead hosts
        // and chaos-host's memory climbs for its first 90 s of cycles.
        .pool_idle_timeout(Duration::from_secs(2))
        .build()?;
    let threshold = plan.campaign.file.campaign.threshold;
    eprintln!(
        "chaos-host: campaign {} on {} ({} nodes, network {}), seed {} (replay with --seed {}), run {run_id}",
        plan.campaign.path.display(),
        plan.campaign.file.system.name,
        plan.campaign.file.system.nodes,
        plan.net.as_str(),
        plan.seed,
        plan.seed
    );
    let started = Instant::now();
    let mut classes: Vec<Option<&Loaded>> = if faults.is_empty() {
        vec![None]
    } else {
        faults.iter().map(Some).collect()
    };
    if let Some((only, _)) = &plan.only {
        let name = |f: &Option<&Loaded>| f.map_or("none".to_string(), |f| f.meta.name.clone());
        let known: Vec<String> = classes.iter().map(name).collect();
        classes.retain(|f| name(f) == *only);
        if classes.is_empty() {
            bail!(
                "--class {only}: the run has no such class (it has: {})",
                known.join(", ")
            );
        }
    }
    let libfaketime = crate::effects::clock::libfaketime();
    // Disk faults need a FUSE layer; refused before any cycle where there
    // can be none.
    let uses_disk = |f: &Loaded| f.meta.capabilities.contains(&"disk");
    if let Some(f) = classes.iter().flatten().find(|f| uses_disk(f))
        && let Err(why) = crate::disk::available()
    {
        bail!("plugin {} asks for disk faults: {why}", f.meta.label());
    }
    let total = match plan.only {
        Some(_) => 1,
        None => plan.cycles as u64 * classes.len() as u64,
    };
    if plan.resume {
        eprintln!(
            "chaos-host: resuming {}: {} of {total} cycle(s) already recorded",
            plan.out.display(),
            done.len()
        );
    }
    let progress = Progress::new(total.saturating_sub(done.len() as u64));
    let mut summaries = Vec::new();
    for fault in classes {
        let class = fault.map_or("none".to_string(), |f| f.meta.name.clone());
        let mut summary = ClassSummary::new(&class, fault.map(|f| f.meta.label()), threshold);
        let recorded: Vec<&Tally> = done.iter().filter(|t| t.class == class).collect();
        for t in &recorded {
            summary.add(t)?;
        }
        let skews = fault.is_some_and(|f| f.meta.capabilities.contains(&"clock"));
        if skews && libfaketime.is_none() {
            tracing::warn!(
                "{class} skews clocks but libfaketime is not installed (Debian: apt-get install libfaketime): its cycles will be reported simulated"
            );
        }
        let cycle = Cycle {
            campaign: &plan.campaign,
            http: &http,
            fault,
            assertions,
            class: &class,
            run_id,
            writes: plan.writes,
            settle: plan.settle,
            network,
            journal,
            faketime: libfaketime.as_deref().filter(|_| skews),
            disk: fault.is_some_and(uses_disk),
        };
        for n in 1..=plan.cycles {
            if recorded.iter().any(|t| t.cycle == n) {
                continue;
            }
            if plan.only.as_ref().is_some_and(|(_, only)| *only != n) {
                continue;
            }
            let seed = cycle_seed(plan.seed, &class, n);
            let dir = work.join(&class).join(format!("cycle-{n}"));
            let t = Instant::now();
            let record = tokio::select! {
                r = cycle.step(n, seed, &dir) => r?,
                sig = shutdown.recv() => {
                    // Dropping the step killed its nodes and undid its effects;
                    // the caller removes the network.
                    let _ = std::fs::remove_dir_all(&work);
                    bail!("interrupted by {sig} during cycle {n} of {class}; nodes killed and reaped, effects undone");
                }
            };
            let record = keep_evidence(record, &dir, &plan.out)?;
            append_line(&mut jsonl, &record)?;
            summary.add(&record.tally())?;
            progress.cycle_done(
                &record,
                crate::report::cycle_line(&record, plan.cycles, t.elapsed()),
            );
        }
        summary.finish();
        summaries.push(summary);
    }
    progress.finish();
    let _ = std::fs::remove_dir_all(&work);
    let summary = Summary {
        pass: summaries.iter().all(|s| s.pass),
        campaign: plan.campaign.path.display().to_string(),
        system: plan.campaign.file.system.name.clone(),
        seed: plan.seed,
        run_id: run_id.to_string(),
        threshold,
        cycles_per_class: plan.cycles,
        writes_per_cycle: plan.writes,
        wall_ms: started.elapsed().as_millis() as u64,
        network: plan.net.as_str(),
        classes: summaries,
    };
    write_atomic(
        &plan.out.join("summary.json"),
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    Ok(summary)
}

/// Keep the files of every cycle that is not a clean pass (any status but
/// `pass`, or a pass with reasons: tolerated losses, unexpected answers)
/// under `out/evidence/`; delete a clean pass's.
fn keep_evidence(mut record: CycleRecord, dir: &Path, out: &Path) -> anyhow::Result<CycleRecord> {
    if record.status == Status::Pass && record.reasons.is_empty() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        return Ok(record);
    }
    let dest = out
        .join("evidence")
        .join(&record.class)
        .join(format!("cycle-{}", record.cycle));
    if dest.exists() {
        std::fs::remove_dir_all(&dest)?;
    }
    std::fs::create_dir_all(dest.parent().expect("has parent"))?;
    std::fs::rename(dir, &dest)
        .with_context(|| format!("keeping evidence in {}", dest.display()))?;
    let missing: serde_json::Map<String, serde_json::Value> = record
        .nodes
        .iter()
        .filter(|n| !n.missing_acked.is_empty())
        .map(|n| {
            (
                format!("node-{}", n.node),
                serde_json::json!(n.missing_acked),
            )
        })
        .collect();
    std::fs::write(
        dest.join("missing.json"),
        serde_json::to_vec_pretty(&missing)?,
    )?;
    std::fs::write(
        dest.join("effects.json"),
        serde_json::to_vec_pretty(&record.effects)?,
    )?;
    record.evidence = Some(dest.display().to_string());
    Ok(record)
}

/// Hold `out/.lock` exclusively for the run.
fn lock_out(out: &Path) -> anyhow::Result<nix::fcntl::Flock<std::fs::File>> {
    let path = out.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        anyhow::anyhow!(
            "--out {}: another chaos-host run is using it ({e}); wait for it to end or choose another --out",
            out.display()
        )
    })
}

/// Open a killed run's `cycles.jsonl` to append to: a last line cut by the
/// kill is dropped (the file is truncated after the last complete line), and
/// the cycles of the complete lines are returned so they are not run again.
fn resume_jsonl(path: &Path) -> anyhow::Result<(std::fs::File, Vec<Tally>)> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        // Killed before the first cycle ended: nothing recorded yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut done: Vec<Tally> = Vec::new();
    for (n, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let t: Tally = serde_json::from_slice(line)
            .with_context(|| format!("{} line {}: not a cycle record", path.display(), n + 1))?;
        if done
            .iter()
            .any(|d| d.class == t.class && d.cycle == t.cycle)
        {
            bail!(
                "{} line {}: cycle {} of {} is recorded twice",
                path.display(),
                n + 1,
                t.cycle,
                t.class
            );
        }
        done.push(t);
    }
    if complete < bytes.len() {
        tracing::warn!(
            "{}: dropping a last line cut by the kill ({} bytes)",
            path.display(),
            bytes.len() - complete
        );
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.set_len(complete as u64)?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))?;
    file.sync_data()?;
    Ok((file, done))
}

fn append_line(file: &mut std::fs::File, record: &CycleRecord) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(record)?;
    line.push(b'\n');
    file.write_all(&line)?;
    file.flush()?;
    file.sync_data()?;
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Live progress: a bar with cycles, writes and failures on a terminal, the
/// plain per-cycle lines otherwise (logs, CI).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    writes: std::cell::Cell<u64>,
    failures: std::cell::Cell<u64>,
}

impl Progress {
    fn new(cycles: u64) -> Self {
        use std::io::IsTerminal;
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(cycles);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} cycles  {msg}  [{elapsed_precise}]",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        Self {
            bar,
            writes: Default::default(),
            failures: Default::default(),
        }
    }

    fn cycle_done(&self, record: &CycleRecord, line: String) {
        self.writes.set(self.writes.get() + record.counts.writes);
        if record.status != Status::Pass {
            self.failures.set(self.failures.get() + 1);
        }
        match &self.bar {
            Some(b) => {
                b.println(line);
                b.set_message(format!(
                    "{}: {} writes, {} non-passing cycle(s)",
                    record.class,
                    self.writes.get(),
                    self.failures.get()
                ));
                b.inc(1);
            }
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// SIGINT and SIGTERM, listened for once for the whole run: a signal that
/// arrives between cycles is seen by the next one instead of being lost.
struct Shutdown {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Shutdown {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("listening for SIGINT")?,
            term: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

/// The seed of cycle `n` of `class`: from the run seed, the class's name
/// and the cycle number only, so adding, removing or reordering classes
/// never changes another class's cycles, a shard can compute any cycle's
/// seed, and `chaos-host replay` can check a recorded one.
pub fn cycle_seed(run_seed: u64, class: &str, n: u32) -> u64 {
    // FNV-1a of the name: stable across builds and platforms (std's
    // hashers are not).
    let name = class.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    splitmix(splitmix(run_seed ^ name) ^ n as u64)
}

/// SplitMix64: derives independent per-cycle seeds from the campaign seed.
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}
