//! The campaign loop: every fault class for its cycles, recording as it goes.
//!
//! `cycles.jsonl` gets one line per cycle, appended and flushed as the cycle
//! ends, in cycle order even when `--parallel` cycles end out of order;
//! `--shard I/N` runs only the shard's cycles ([`crate::shard`]), with the
//! seeds of the unsharded run; `summary.json` is written (atomically) at the
//! end. Ctrl-C or SIGTERM
//! stop the current cycle: its nodes are killed and reaped and its effects
//! undone before chaos-host exits.

use crate::plan::{Plan, now_nanos};
use crate::summary::Summary;
use anyhow::{Context, bail};
use chaos_core::cycle::Cycle;
use chaos_core::metrics::{ClassSummary, CycleRecord, Status, Tally};
use chaos_journal::journal::{self, Journal};
use chaos_mechanisms::net::{Mode, Network};
use chaos_model::seed::{cycle_seed, splitmix};
use chaos_plugin::{Grants, Loaded, Runtime};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The plugins of a run, sorted into faults and assertions, the fault
/// classes they make, and the pins of its OCI references (for `run.json`).
pub struct Plugins {
    pub faults: Vec<Loaded>,
    pub assertions: Vec<Loaded>,
    /// The campaign's client component (`[client] plugin`).
    pub client: Option<Arc<Loaded>>,
    /// Each class with its faults (indexes into `faults`): one per fault
    /// named on the command line (or in `campaign.assertions`), then each
    /// `[[class]]`; empty for a run with none (the class `none`).
    pub classes: Vec<ClassDef>,
    pub oci: BTreeMap<String, chaos_model::plugin_ref::Pin>,
}

/// A fault class: what its cycles are named and which plugins inject.
#[derive(Clone, Debug)]
pub struct ClassDef {
    pub name: String,
    pub faults: Vec<usize>,
}

/// Load every plugin, sorting faults from assertions, and authorize each.
/// OCI references resolve to the digests `run.json` recorded (resume,
/// replay), else through the campaign's `chaos.lock`.
pub async fn load_plugins(plan: &Plan, runtime: &Runtime) -> anyhow::Result<Plugins> {
    use chaos_model::plugin_ref::PluginRef;
    let file = &plan.campaign.file;
    let composed = &plan.campaign.classes;
    // Where each source was named: a class of its own (campaign assertions
    // and --plugin), or only inside [[class]] entries.
    let client_source = match &plan.campaign.client {
        chaos_model::campaign::ClientSpec::Component { plugin } => Some(plugin),
        _ => None,
    };
    let sources: Vec<(&PluginRef, bool)> = plan
        .campaign
        .assertions
        .iter()
        .chain(&plan.plugins)
        .map(|s| (s, true))
        .chain(client_source.map(|s| (s, false)))
        .chain(
            composed
                .iter()
                .flat_map(|c| c.faults.iter().map(|s| (s, false))),
        )
        .collect();
    let lock = match &plan.lock {
        Some(path) if sources.iter().any(|(s, _)| matches!(s, PluginRef::Oci(_))) => {
            Some(chaos_plugin::lock::Lock::open(path, plan.update_lock)?)
        }
        _ => None,
    };
    let mut resolver = chaos_plugin::Resolver::new(lock, plan.args.oci.clone());
    // Each source's key, by its display (composed classes find their
    // plugins by it once they are loaded).
    let mut key_of: std::collections::HashMap<String, String> = Default::default();
    // Index into `loaded` by key; whether it forms a class of its own.
    let mut index_of: std::collections::HashMap<String, usize> = Default::default();
    // Grants, pins, params, out dirs and results are keyed by name: two
    // files under one name (a copy, a fault and an assertion) are refused.
    let mut names = chaos_plugin::Names::default();
    let mut loaded: Vec<(Loaded, String, bool, String)> = Vec::new();
    for (source, own_class) in sources {
        let fetched = resolver.fetch(source).await?;
        key_of.insert(source.to_string(), fetched.key.clone());
        // The same source named twice (a campaign assertion inside a
        // --plugin-dir, a --plugin also in a [[class]]) loads once.
        if let Some(&i) = index_of.get(&fetched.key) {
            loaded[i].2 |= own_class;
            continue;
        }
        index_of.insert(fetched.key.clone(), loaded.len());
        let origin = fetched.origin.clone();
        loaded.push((
            runtime.load_bytes(&origin, fetched.bytes).await?,
            origin,
            own_class,
            fetched.key,
        ));
    }
    let mut seen_native = std::collections::HashSet::new();
    for path in &plan.native_plugins {
        let key = std::fs::canonicalize(path)
            .unwrap_or_else(|_| path.clone())
            .display()
            .to_string();
        if index_of.contains_key(&key) || !seen_native.insert(key.clone()) {
            continue;
        }
        let p = runtime.load_native(path)?;
        eprintln!(
            "chaos-host: WARNING: native plugin {} ({}) is NOT sandboxed: it runs inside chaos-host with all its privileges",
            p.meta.label(),
            path.display()
        );
        loaded.push((p, path.display().to_string(), true, key));
    }
    // A grant for a plugin this run does not load is a typo, not a no-op.
    for (who, caps) in &plan.allow {
        if !loaded.iter().any(|(p, ..)| p.meta.name == *who) {
            let mut names: Vec<&str> = loaded.iter().map(|(p, ..)| p.meta.name.as_str()).collect();
            names.sort_unstable();
            bail!(
                "--allow {who}={caps}: no plugin named {who} is loaded in this run (loaded: {}); grant by the name `chaos-host inspect` shows",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            );
        }
    }
    let client_key = client_source.and_then(|s| key_of.get(&s.to_string()).cloned());
    let mut faults = Vec::new();
    let mut assertions = Vec::new();
    let mut client = None;
    let mut solo = Vec::new();
    // Index into `faults` of each loaded plugin that is a fault.
    let mut fault_at: Vec<Option<usize>> = Vec::new();
    for (mut p, origin, own_class, key) in loaded {
        let path = Path::new(&origin);
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
            grants.grant(chaos_plugin::grants_parse(cap).with_context(|| {
                format!("campaign {}: grants.{name}", plan.campaign.path.display())
            })?);
        }
        for (who, caps) in &plan.allow {
            if *who == name {
                for cap in caps.split(',') {
                    grants.grant(
                        chaos_plugin::grants_parse(cap)
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
        let is_campaigns_client = client_key.as_deref() == Some(key.as_str());
        match (p.is_client(), is_campaigns_client) {
            (true, true) => {
                fault_at.push(None);
                client = Some(Arc::new(p));
                continue;
            }
            (true, false) => bail!(
                "plugin {}: {} is a client component, not a fault or an assertion; name it in the campaign's [client] plugin",
                path.display(),
                p.meta.label()
            ),
            (false, true) => bail!(
                "campaign {}: client.plugin: {} is a {} plugin, not a client (a client exports chaos:plugin/client, contract 0.3.0)",
                plan.campaign.path.display(),
                p.meta.label(),
                p.meta.kind
            ),
            (false, false) => {}
        }
        if p.is_fault() {
            if own_class {
                solo.push(faults.len());
            }
            fault_at.push(Some(faults.len()));
            faults.push(p);
        } else {
            if let Some(fuel) = file.campaign.assertion_fuel {
                p.set_fuel(fuel);
            }
            fault_at.push(None);
            assertions.push(p);
        }
    }
    let mut classes: Vec<ClassDef> = solo
        .into_iter()
        .map(|i| ClassDef {
            name: faults[i].meta.name.clone(),
            faults: vec![i],
        })
        .collect();
    for (ci, c) in composed.iter().enumerate() {
        if classes.iter().any(|k| k.name == c.name) {
            bail!(
                "campaign {}: class[{ci}].name: {:?} is also the name of a fault plugin run as its own class; rename the composed class",
                plan.campaign.path.display(),
                c.name
            );
        }
        let mut members = Vec::new();
        for (j, source) in c.faults.iter().enumerate() {
            let at = key_of
                .get(&source.to_string())
                .and_then(|k| index_of.get(k))
                .and_then(|&i| fault_at[i]);
            let Some(at) = at else {
                bail!(
                    "campaign {}: class[{ci}].faults[{j}]: {source} is an assertion plugin, not a fault; list it in campaign.assertions",
                    plan.campaign.path.display()
                );
            };
            if members.contains(&at) {
                bail!(
                    "campaign {}: class[{ci}].faults[{j}]: {source} is {} again; a plugin runs once per cycle",
                    plan.campaign.path.display(),
                    faults[at].meta.label()
                );
            }
            members.push(at);
        }
        classes.push(ClassDef {
            name: c.name.clone(),
            faults: members,
        });
    }
    // The lock is written only once every plugin passed its checks
    // (names, pins, grants, parameters): a refused run changes nothing.
    let oci = resolver.finish()?;
    Ok(Plugins {
        faults,
        assertions,
        client,
        classes,
        oci,
    })
}

/// Run the whole campaign; returns the summary (also written to `out`).
pub async fn run(plan: &Plan, runtime: &Runtime) -> anyhow::Result<Summary> {
    let Plugins {
        faults,
        assertions,
        client,
        classes,
        oci,
    } = load_plugins(plan, runtime).await?;
    let shas: std::collections::BTreeMap<String, String> = faults
        .iter()
        .chain(&assertions)
        .chain(client.as_deref())
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
        if f.meta.capabilities.contains(&"link") {
            match plan.net {
                Mode::Proxy => {}
                Mode::Netns => {
                    if let Err(e) = chaos_mechanisms::net::nfqueue_preflight() {
                        bail!("plugin {}: it degrades links: {e}", f.meta.name);
                    }
                }
                _ => bail!(
                    "plugin {}: it degrades links, but this campaign runs nodes in {} mode, where link faults are not available ({}); set network.mode = \"proxy\" or \"netns\" (root) in the campaign, or pass --net proxy",
                    f.meta.name,
                    plan.net.as_str(),
                    match plan.net {
                        Mode::Loopback => "plain loopback has no links to degrade",
                        _ =>
                            "the link proxies and verdict loops run on the control node, not on remote hosts",
                    }
                ),
            }
        }
    }
    // Remote hosts are reached, and checked for the system under test,
    // before anything is written: an unreachable host is one error.
    let disk_fault = faults
        .iter()
        .find(|f| f.meta.capabilities.contains(&"disk"));
    let hosts = match &plan.hosts {
        Some(layout) => {
            let programs: Vec<PathBuf> = plan
                .campaign
                .commands
                .iter()
                .map(|(p, _)| p.clone())
                .collect();
            let hosts = chaos_ssh::Hosts::connect(layout, &programs).await?;
            // Disk layers are mounted on the hosts: each must be able to
            // (root, /dev/fuse), or the class is refused now, naming it.
            if let Some(f) = disk_fault
                && let Err(why) = chaos_mechanisms::disk::remote::preflight_all(&hosts).await
            {
                bail!(
                    "plugin {} asks for disk faults, which mount a FUSE layer on each node's host: {why}",
                    f.meta.label()
                );
            }
            Some(Arc::new(hosts))
        }
        None => None,
    };
    let mut shutdown = Shutdown::new()?;
    // Whatever a killed earlier run left behind is undone before we start.
    let state = journal::state_dir();
    for line in journal::recover(&state, &chaos_mechanisms::UNDO)? {
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
        args.oci = oci;
        write_atomic(
            &plan.out.join("run.json"),
            &serde_json::to_vec_pretty(&args)?,
        )?;
    }
    let run_id = format!(
        "{:06x}",
        splitmix(plan.seed ^ std::process::id() as u64 ^ now_nanos()) & 0xff_ffff
    );
    let journal = Arc::new(Journal::create(&state, &run_id, &chaos_mechanisms::UNDO)?);
    // The masters daemonize: journaled so a SIGKILLed run's are closed too.
    let mut masters = Vec::new();
    for h in hosts.iter().flat_map(|h| &h.hosts) {
        masters.push(journal.record(h.master_entry())?);
    }
    let closes_masters = hosts.clone();
    // A class that skews clocks or faults disks needs chaos-host's helper
    // on every host; disk faults cannot do without it.
    if let Some(h) = &hosts
        && faults.iter().any(|f| {
            let caps = &f.meta.capabilities;
            caps.contains(&"clock") || caps.contains(&"disk")
        })
    {
        let failed = h.install_helpers(&journal).await;
        if let (Some(f), false) = (disk_fault, failed.is_empty()) {
            h.remove_run_dirs(&journal).await;
            drop(hosts);
            drop(closes_masters);
            for seq in masters {
                journal.done(seq);
            }
            close_journal(journal);
            bail!(
                "plugin {} asks for disk faults, which need chaos-host's helper on each node's host: {}",
                f.meta.label(),
                failed.join("; ")
            );
        }
    }
    let network = match Network::create(
        plan.net,
        plan.campaign.file.system.nodes,
        &run_id,
        journal.clone(),
        plan.parallel as usize,
        hosts,
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
        &classes,
        (&assertions, &client),
        &run_id,
        &network,
        &journal,
        &mut shutdown,
    )
    .await;
    network.destroy().await;
    drop(network);
    if let Some(h) = &closes_masters {
        h.remove_run_dirs(&journal).await;
    }
    // The last holder of the hosts: dropping them closes the masters (if
    // something still holds them, closing the journal closes them).
    if let Some(Ok(hosts)) = closes_masters.map(Arc::try_unwrap) {
        drop(hosts);
        for seq in masters {
            journal.done(seq);
        }
    }
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

/// A class as its cycles run it.
struct Class<'a> {
    name: String,
    faults: Vec<&'a Loaded>,
}

impl Class<'_> {
    fn declares(&self, capability: &str) -> bool {
        self.faults
            .iter()
            .any(|f| f.meta.capabilities.contains(&capability))
    }

    /// The plugins, as the class summary names them.
    fn label(&self) -> Option<String> {
        (!self.faults.is_empty()).then(|| {
            self.faults
                .iter()
                .map(|f| f.meta.label())
                .collect::<Vec<_>>()
                .join(" + ")
        })
    }
}

#[allow(clippy::too_many_arguments, reason = "the run's parts, borrowed once")]
async fn run_classes(
    plan: &Plan,
    faults: &[Loaded],
    class_defs: &[ClassDef],
    (assertions, client): (&[Loaded], &Option<Arc<Loaded>>),
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
    let mut classes: Vec<Class> = if class_defs.is_empty() {
        vec![Class {
            name: "none".to_string(),
            faults: Vec::new(),
        }]
    } else {
        class_defs
            .iter()
            .map(|c| Class {
                name: c.name.clone(),
                faults: c.faults.iter().map(|&i| &faults[i]).collect(),
            })
            .collect()
    };
    if let Some((only, _)) = &plan.only {
        let known: Vec<String> = classes.iter().map(|c| c.name.clone()).collect();
        classes.retain(|c| c.name == *only);
        if classes.is_empty() {
            bail!(
                "--class {only}: the run has no such class (it has: {})",
                known.join(", ")
            );
        }
    }
    let libfaketime = chaos_mechanisms::clock::libfaketime();
    let ptrace_refused = chaos_mechanisms::clock::vdso::refusal();
    // Disk faults need a FUSE layer; refused before any cycle where there
    // can be none. Remote nodes' layers are mounted on their hosts,
    // checked there when the hosts were reached.
    let uses_disk = |f: &&&Loaded| f.meta.capabilities.contains(&"disk");
    if let Some(f) = classes.iter().flat_map(|c| &c.faults).find(uses_disk)
        && plan.hosts.is_none()
        && let Err(why) = chaos_mechanisms::disk::available()
    {
        bail!("plugin {} asks for disk faults: {why}", f.meta.label());
    }
    let total = match plan.only {
        Some(_) => 1,
        None => {
            let owned = (1..=plan.cycles)
                .filter(|n| plan.shard.is_none_or(|s| s.owns(*n)))
                .count();
            owned as u64 * classes.len() as u64
        }
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
    for class_def in &classes {
        let class = class_def.name.clone();
        let mut summary = ClassSummary::new(&class, class_def.label(), threshold);
        let recorded: Vec<&Tally> = done.iter().filter(|t| t.class == class).collect();
        for t in &recorded {
            summary.add(t)?;
        }
        let skews = class_def.declares("clock");
        if let (true, Some(why)) = (skews, &ptrace_refused) {
            match libfaketime {
                Some(_) => tracing::warn!(
                    "{class} skews clocks but {why}: falling back to libfaketime, its skews recorded simulated"
                ),
                None => tracing::warn!(
                    "{class} skews clocks but {why}, and libfaketime (the fallback) is not installed (Debian: apt-get install libfaketime): its cycles will be reported simulated"
                ),
            }
        }
        let cycle = Cycle {
            campaign: &plan.campaign,
            http: &http,
            faults: &class_def.faults,
            assertions,
            class: &class,
            run_id,
            writes: plan.writes,
            settle: plan.settle,
            network,
            journal,
            skews,
            // Remote nodes get no libfaketime: their skews run on their
            // hosts (vDSO) or are recorded simulated there.
            faketime: libfaketime
                .as_deref()
                .filter(|_| skews && ptrace_refused.is_some() && plan.hosts.is_none()),
            disk: class_def.declares("disk"),
            out: &plan.out,
            client_plugin: client.clone(),
        };
        // This class's cycles still to run, in cycle order: not recorded
        // yet, this shard's, and the one asked for when replaying.
        let todo: Vec<u32> = (1..=plan.cycles)
            .filter(|n| !recorded.iter().any(|t| t.cycle == *n))
            .filter(|n| plan.shard.is_none_or(|s| s.owns(*n)))
            .filter(|n| plan.only.as_ref().is_none_or(|(_, only)| only == n))
            .collect();
        let run_one = |n: u32| {
            let cycle = &cycle;
            let dir = work.join(&class).join(format!("cycle-{n}"));
            let seed = cycle_seed(plan.seed, &class, n);
            async move {
                let t = Instant::now();
                let record = cycle.step(n, seed, &dir).await;
                (n, dir, record, t.elapsed())
            }
        };
        // Up to `parallel` cycles in flight; each finished record waits in
        // `in_order` until every earlier cycle of the class is written, so
        // cycles.jsonl (and the summary folded from it) is in cycle order
        // whatever order cycles finish in. What is "done" for --resume is
        // what cycles.jsonl holds: a cycle finished out of order but not yet
        // written when chaos-host is killed runs again on resume.
        let mut queue = todo.iter().copied();
        let mut in_order = InOrder::new(&todo);
        let mut running = futures::stream::FuturesUnordered::new();
        let mut in_flight = std::collections::BTreeSet::new();
        loop {
            while running.len() < plan.parallel as usize
                && let Some(n) = queue.next()
            {
                in_flight.insert(n);
                running.push(run_one(n));
            }
            let (n, dir, record, took) = tokio::select! {
                Some(done) = running.next() => done,
                sig = shutdown.recv(), if !running.is_empty() => {
                    // Dropping the steps killed their nodes and undid their
                    // effects; the caller removes the network.
                    drop(running);
                    let _ = std::fs::remove_dir_all(&work);
                    bail!(
                        "interrupted by {sig} during cycle(s) {} of {class}; nodes killed and reaped, effects undone",
                        in_flight.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
                    );
                }
                else => break,
            };
            in_flight.remove(&n);
            // A harness error ends the run; dropping `running` tears down
            // the cycles still in flight.
            let record = keep_evidence(record?, &dir, &plan.out)?;
            progress.cycle_done(
                &record,
                crate::report::cycle_line(&record, plan.cycles, took),
            );
            for record in in_order.finished(n, record) {
                append_line(&mut jsonl, &record)?;
                summary.add(&record.tally())?;
            }
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
        parallel: plan.parallel,
        shard: plan.shard,
        merged: Vec::new(),
        classes: summaries,
    };
    write_atomic(
        &plan.out.join("summary.json"),
        &serde_json::to_vec_pretty(&summary)?,
    )?;
    Ok(summary)
}

/// Items of cycles that finish in any order, handed out in cycle order: an
/// item waits until every cycle before it in `order` has finished.
struct InOrder<T> {
    order: std::collections::VecDeque<u32>,
    waiting: std::collections::BTreeMap<u32, T>,
}

impl<T> InOrder<T> {
    fn new(order: &[u32]) -> Self {
        Self {
            order: order.iter().copied().collect(),
            waiting: Default::default(),
        }
    }

    /// Cycle `n` finished with `item`: every item now due, in order.
    fn finished(&mut self, n: u32, item: T) -> Vec<T> {
        self.waiting.insert(n, item);
        let mut due = Vec::new();
        while let Some(item) = self.order.front().and_then(|n| self.waiting.remove(n)) {
            self.order.pop_front();
            due.push(item);
        }
        due
    }
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

#[cfg(test)]
mod tests {
    use super::InOrder;

    /// Cycles finishing 3, 1, 4, 2 (of 1..=4, cycle 5 never) come out 1, 2,
    /// 3, 4: nothing is handed out before every earlier cycle is.
    #[test]
    fn cycles_finished_out_of_order_come_out_in_cycle_order() {
        let mut o = InOrder::new(&[1, 2, 3, 4, 5]);
        assert!(o.finished(3, "c3").is_empty());
        assert_eq!(o.finished(1, "c1"), vec!["c1"]);
        assert!(o.finished(4, "c4").is_empty());
        assert_eq!(o.finished(2, "c2"), vec!["c2", "c3", "c4"]);
        // A shard's cycles (1, 3, 5 of a 2-shard run) are consecutive to it.
        let mut o = InOrder::new(&[1, 3, 5]);
        assert!(o.finished(5, 5).is_empty());
        assert_eq!(o.finished(1, 1), vec![1]);
        assert_eq!(o.finished(3, 3), vec![3, 5]);
    }
}
