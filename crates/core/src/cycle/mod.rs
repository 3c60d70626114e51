//! One cycle of a campaign.
//!
//! [`Cycle::step`] runs, in order (each a method of its own):
//! 1. **start**: fresh data dirs, namespace and free ports; spawn; ready
//!    (`Cluster::start`);
//! 2. **exercise**: the burst of writes, and the class's fault plugins'
//!    `inject` concurrently with it (several in a composed class, on one
//!    timeline), asking the host for effects; then the **heal** (every
//!    effect still in force undone by the host) and the recovery window;
//! 3. **converge**: read every live node back until it holds every
//!    acknowledged id or `settle_ms` passes (`converge_all`, [`converge`]);
//! 4. **history**: the cycle's operations and effect windows written
//!    (`write_history`);
//! 5. **assert**: assertion plugins judge the observations (`assert_all`);
//! 6. **probe**: the quorum probes, when the campaign asks (they kill
//!    peers, so they come after every figure is taken);
//! 7. **record**: the figures, and [`crate::verdict::judge`] turns the
//!    facts into a status (`record`);
//! 8. **teardown**: SIGKILL process groups, reap, check ports are free.
//!
//! Harness failures (a node that never became ready, an answer the campaign
//! cannot parse, an id the cycle never wrote) are errors of the step. Plugin
//! failures, dead or silent nodes and lost writes are findings: they fail the
//! cycle with a reason and the campaign goes on.

mod converge;
mod during;
pub mod recovery;

use crate::client::Client;
use crate::metrics::{Counts, CycleRecord, Latency, NodeRecord, check_unit, ratio};
use crate::workload::{self, Outcome, Progress, WriteResult};
use anyhow::Context;
use chaos_effects::{EffectRecord, Effects, Scope};
use chaos_journal::journal::Journal;
use chaos_lifecycle::{Cluster, Node, Placement};
use chaos_mechanisms::net::Network;
use chaos_model::campaign::Campaign;
use chaos_model::history::{EffectWindow, History, Processes, Recorder};
use chaos_plugin::{AssertionVerdict, CycleInfo, Loaded, NodeObservation, NodeState, Observations};
use converge::NodeView;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The seed a fault plugin's `random` draws from: the cycle's own in a class
/// of one (so replays of earlier runs hold), and one per plugin name in a
/// composed class, so two plugins never make the same draws (and pick the
/// same peer) by construction.
fn plugin_seed(cycle_seed: u64, plugin: &str, plugins: usize) -> u64 {
    if plugins <= 1 {
        cycle_seed
    } else {
        chaos_model::seed::cycle_seed(cycle_seed, plugin, 0)
    }
}

/// Lines of a dead node's log kept in the record.
const LOG_TAIL_LINES: usize = 8;

/// Everything a cycle needs that outlives it.
pub struct Cycle<'a> {
    pub campaign: &'a Campaign,
    pub http: &'a reqwest::Client,
    /// The class's fault plugins: none for the class `none`, several for a
    /// composed class.
    pub faults: &'a [&'a Loaded],
    pub assertions: &'a [Loaded],
    pub class: &'a str,
    /// Short id of this run, part of every namespace and write id.
    pub run_id: &'a str,
    pub writes: u32,
    /// The convergence deadline after the heal.
    pub settle: Duration,
    pub network: &'a Network,
    pub journal: &'a Arc<Journal>,
    /// The fault skews clocks (vDSO patching, see effects/vdso.rs).
    pub skews: bool,
    /// libfaketime, preloaded into nodes when the fault skews clocks and
    /// ptrace is refused (the labelled fallback).
    pub faketime: Option<&'a Path>,
    /// Mount a disk layer under each data dir (the fault declares `disk`).
    pub disk: bool,
    /// The run's out dir: each cycle's history goes to
    /// `history/<class>/cycle-<n>/history.jsonl` under it.
    pub out: &'a Path,
    /// The campaign's client component (`[client] plugin`), loaded.
    pub client_plugin: Option<Arc<Loaded>>,
}

/// What the burst and the fault left behind.
struct Injected {
    burst: workload::Burst,
    effects: Arc<Effects>,
    /// The fault plugins' failures.
    fault_errors: Vec<String>,
    denials: Vec<String>,
    /// When the burst started (the zero of every record's times).
    started: Instant,
}

/// What the exercise step left: the burst with its faults, the heal, the
/// recovery window, and the register gets that did not parse.
struct Exercised {
    injected: Injected,
    healed: Instant,
    recovery: crate::metrics::RecoveryRecord,
    recovery_took: Duration,
    unparsed: Vec<String>,
}

/// What the cycle saw after the exercise: each node's read-back and
/// record, the effects, the assertions' verdicts, every plugin failure,
/// the probes, and where the history went.
struct Observed {
    views: Vec<NodeView>,
    nodes: Vec<NodeRecord>,
    effects: Vec<EffectRecord>,
    verdicts: Vec<AssertionVerdict>,
    plugin_errors: Vec<String>,
    probes: Option<crate::probes::QuorumProbes>,
    history_path: std::path::PathBuf,
}

impl Cycle<'_> {
    pub async fn step(&self, cycle: u32, seed: u64, dir: &Path) -> anyhow::Result<CycleRecord> {
        let mut phases = BTreeMap::new();
        // A composed class's name may hold `+` or `.`, which a query string
        // or a key would change: the namespace keeps letters, digits, - and _.
        let class = chaos_model::campaign::namespace_part(self.class);
        let namespace = format!("chaos-{}-{class}-c{cycle}", self.run_id);
        let t = Instant::now();
        let place = Placement {
            network: self.network,
            journal: self.journal,
            skews: self.skews,
            faketime: self.faketime,
            disk: self.disk,
        };
        let mut cluster = Cluster::start(self.campaign, dir, cycle, &namespace, self.http, place)
            .await
            .with_context(|| format!("cycle {cycle} of {}", self.class))?;
        let client = Client::new(crate::client::Made {
            campaign: self.campaign,
            http: self.http,
            namespace: &namespace,
            cycle,
            nodes: cluster.nodes.iter().map(|n| n.client).collect(),
            dir,
            journal: self.journal.clone(),
            processes: self.processes(),
            plugin: self.client_plugin.clone(),
            seed,
        });
        let set_up = self.set_up_client(&mut cluster, &client).await;
        phases.insert("start", t.elapsed().as_millis() as u64);

        let result = match set_up {
            Ok(()) => {
                self.run_started(&cluster, &client, cycle, seed, &namespace, &mut phases)
                    .await
            }
            Err(e) => Err(e.context(format!("cycle {cycle} of {}", self.class))),
        };

        let t = Instant::now();
        client.close().await;
        let torn = cluster.teardown().await;
        phases.insert("teardown", t.elapsed().as_millis() as u64);
        let mut record = result?;
        torn.with_context(|| format!("cycle {cycle} teardown"))?;
        record.phases_ms = phases;
        Ok(record)
    }

    /// Without `[ready] url`, the nodes are ready when the client says so;
    /// then the client sets up what the workload needs (a driver's `setup`).
    async fn set_up_client(&self, cluster: &mut Cluster, client: &Client) -> anyhow::Result<()> {
        if let Some(ready) = client.readiness() {
            for n in &cluster.nodes {
                n.set_client_ready(ready.clone());
            }
            cluster.wait_ready(self.http).await?;
        }
        client
            .setup(self.processes().recovery())
            .await
            .map_err(anyhow::Error::msg)
    }

    /// The cycle after its nodes are up, as named steps: exercise (the
    /// burst with the fault, the heal, the recovery window), converge,
    /// write the history, assert, take the node records and probes, then
    /// figures and verdict.
    async fn run_started(
        &self,
        cluster: &Cluster,
        client: &Client,
        cycle: u32,
        seed: u64,
        namespace: &str,
        phases: &mut BTreeMap<&'static str, u64>,
    ) -> anyhow::Result<CycleRecord> {
        let c = self.campaign;
        let info = CycleInfo {
            cycle,
            seed,
            nodes: c.file.system.nodes,
            primary: c.file.system.primary,
            writes: self.writes,
            // Each plugin gets its own in `inject`.
            params: Vec::new(),
        };
        let ids: Arc<Vec<String>> = Arc::new(
            (0..self.writes)
                .map(|i| format!("{namespace}-w{i}"))
                .collect(),
        );
        // The zero of every time in the cycle: the fault plugins start now,
        // the burst once they are set up (at most SET_UP_CAP later).
        let started = Instant::now();
        let history = Arc::new(Recorder::new(started));
        let processes = self.processes();

        let mut ex = self
            .exercise(
                (cluster, client),
                &info,
                ids.clone(),
                namespace,
                &history,
                processes,
            )
            .await;
        phases.insert("burst", ex.injected.burst.elapsed.as_millis() as u64);
        phases.insert(
            "fault",
            ex.healed.duration_since(started).as_millis() as u64,
        );
        phases.insert("recovery", ex.recovery_took.as_millis() as u64);

        let t = Instant::now();
        let views = self
            .converge_all(cluster, client, &ids, &mut ex, &history, processes)
            .await?;
        phases.insert("converge", t.elapsed().as_millis() as u64);

        let effects: Vec<EffectRecord> = ex.injected.effects.records();
        let (history, history_path) = self.write_history(cycle, &history, &effects)?;

        let t = Instant::now();
        let (verdicts, mut plugin_errors) = self.assert_all(&info, &ex, &views, &history).await;
        // A driver that exited or answered garbage is the harness's fault:
        // the cycle's figures cannot be trusted.
        plugin_errors.extend(
            client
                .problems()
                .into_iter()
                .map(|p| format!("client: {p}")),
        );
        phases.insert("assert", t.elapsed().as_millis() as u64);

        // Taken after the assertions, just before the probes kill peers on
        // purpose: a node that died while the assertions ran is judged too.
        let acked = ids_with(&ex.injected.burst.results, Outcome::Ok);
        let nodes = node_records(&cluster.nodes, &views, &acked, ex.injected.started);
        let probes = if c.file.probes.quorum {
            let t = Instant::now();
            let process = processes.recovery();
            let p = crate::probes::quorum(c, client, &cluster.nodes, namespace, process).await?;
            phases.insert("probes", t.elapsed().as_millis() as u64);
            Some(p)
        } else {
            None
        };

        self.record(
            (cycle, seed, namespace),
            ex,
            Observed {
                views,
                nodes,
                effects,
                verdicts,
                plugin_errors,
                probes,
                history_path,
            },
        )
    }

    /// The processes of the history: writers, concurrent readers, then
    /// register clients and the recovery writer (see [`Processes`]).
    fn processes(&self) -> Processes {
        let c = self.campaign;
        let writers = c.file.burst.concurrency.min(self.writes.max(1));
        Processes {
            writers,
            readers: if c.file.read.during_ms.is_some() {
                writers
            } else {
                0
            },
            nodes: c.file.system.nodes,
        }
    }

    /// Step 1: the burst with the class's faults, the heal and the recovery
    /// window, while readers read during the burst (`[read] during_ms`) and
    /// register clients run their operations.
    async fn exercise(
        &self,
        (cluster, client): (&Cluster, &Client),
        info: &CycleInfo,
        ids: Arc<Vec<String>>,
        namespace: &str,
        history: &Arc<Recorder>,
        processes: Processes,
    ) -> Exercised {
        let c = self.campaign;
        let (cycle, seed) = (info.cycle, info.seed);
        let started = history.started();
        let (stop_tx, stop_rx) = watch::channel(false);
        let registers = async {
            match c.file.workload.as_ref().filter(|w| w.is_register()) {
                Some(w) => {
                    crate::register::run(crate::register::Run {
                        workload: w,
                        http: self.http,
                        client,
                        nodes: &cluster.nodes,
                        primary: c.file.system.primary,
                        namespace,
                        cycle,
                        seed,
                        history,
                        first_process: processes.register(0),
                    })
                    .await
                }
                None => Vec::new(),
            }
        };
        let readers = async {
            if let Some(ms) = c.file.read.during_ms {
                during::read_while(
                    client,
                    &cluster.nodes,
                    (history, processes),
                    Duration::from_millis(ms),
                    stop_rx,
                )
                .await;
            }
        };
        let phased = async {
            let injected = self
                .inject((cluster, client), info, ids, (started, history))
                .await;
            self.heal(&injected.effects).await;
            let healed = Instant::now();
            let t = Instant::now();
            let recovery = recovery::recover(
                c,
                client,
                &cluster.nodes,
                namespace,
                self.writes,
                recovery::At {
                    started: injected.started,
                    healed,
                    history,
                    process: processes.recovery(),
                },
            )
            .await;
            let _ = stop_tx.send(true);
            (injected, healed, recovery, t.elapsed())
        };
        let ((injected, healed, recovery, recovery_took), (), unparsed) =
            tokio::join!(phased, readers, registers);
        Exercised {
            injected,
            healed,
            recovery,
            recovery_took,
            unparsed,
        }
    }

    /// Step 2: read every live node back until it holds every acknowledged
    /// write, the burst's and the recovery window's, or the deadline
    /// passes; acknowledged recovery writes a live node lacks then are the
    /// recovery's `lost` (the cycle's figures stay the burst's).
    #[allow(
        clippy::too_many_arguments,
        reason = "the cycle's own context, passed as the other steps get it"
    )]
    async fn converge_all(
        &self,
        cluster: &Cluster,
        client: &Client,
        ids: &[String],
        ex: &mut Exercised,
        history: &Recorder,
        processes: Processes,
    ) -> anyhow::Result<Vec<NodeView>> {
        let recovery_writes = &ex.recovery.writes_detail;
        let acked: Vec<&str> = ids_with(&ex.injected.burst.results, Outcome::Ok);
        let recovery_acked: Vec<&str> = ids_with(recovery_writes, Outcome::Ok);
        let acked_set: HashSet<&str> = acked.iter().chain(&recovery_acked).copied().collect();
        let issued: HashSet<&str> = ids
            .iter()
            .chain(recovery_writes.iter().map(|w| &w.id))
            .map(String::as_str)
            .collect();
        let views = converge::converge(
            &cluster.nodes,
            &converge::Want {
                client,
                acked: &acked_set,
                issued: &issued,
                healed: ex.healed,
                // `settle_ms` from the heal for the burst's writes, and from
                // its acknowledgement for the last recovery write.
                deadline: self.settle + Duration::from_millis(ex.recovery.last_ack_ms.unwrap_or(0)),
                history,
                processes,
            },
        )
        .await?;
        let lost: Vec<String> = recovery_acked
            .iter()
            .filter(|id| {
                views
                    .iter()
                    .filter_map(|v| v.held.as_ref())
                    .any(|held| !held.iter().any(|h| h == *id))
            })
            .map(|id| id.to_string())
            .collect();
        ex.recovery.lost = lost;
        Ok(views)
    }

    /// Step 3: the cycle's history, with its effects' windows, written to
    /// `history/<class>/cycle-<n>/history.jsonl` under the run's out dir.
    fn write_history(
        &self,
        cycle: u32,
        history: &Recorder,
        effects: &[EffectRecord],
    ) -> anyhow::Result<(Arc<History>, std::path::PathBuf)> {
        let history = Arc::new(
            history.finish(
                effects
                    .iter()
                    .map(|e| EffectWindow {
                        kind: e.kind.to_string(),
                        node: e.node,
                        start_us: e.start_us,
                        end_us: e.end_us,
                    })
                    .collect(),
            ),
        );
        let dir = self
            .out
            .join("history")
            .join(self.class)
            .join(format!("cycle-{cycle}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(chaos_model::history::FILE);
        chaos_model::history::write_jsonl(&path, &history)?;
        Ok((history, path))
    }

    /// Step 4: the assertion plugins' verdicts, and every plugin failure of
    /// the cycle (the faults' first), with the register gets no checker
    /// can judge.
    async fn assert_all(
        &self,
        info: &CycleInfo,
        ex: &Exercised,
        views: &[NodeView],
        history: &Arc<History>,
    ) -> (Vec<AssertionVerdict>, Vec<String>) {
        let (verdicts, mut plugin_errors) = self
            .assert(info, &ex.injected.burst.results, views, history)
            .await;
        plugin_errors.splice(0..0, ex.injected.fault_errors.iter().cloned());
        if let Some(first) = ex.unparsed.first() {
            // The history holds reads whose value is unknown: no checker
            // can judge it, and the campaign's get template is the suspect.
            plugin_errors.push(format!(
                "register workload: {} get answer(s) did not parse, e.g. {first}",
                ex.unparsed.len()
            ));
        }
        (verdicts, plugin_errors)
    }

    /// Last step: the figures (from ids; counts are the burst's alone) and
    /// the verdict, as the cycle's record.
    fn record(
        &self,
        (cycle, seed, namespace): (u32, u64, &str),
        ex: Exercised,
        seen: Observed,
    ) -> anyhow::Result<CycleRecord> {
        let c = self.campaign;
        let Exercised {
            injected, recovery, ..
        } = ex;
        let Observed {
            views,
            nodes,
            effects,
            verdicts,
            plugin_errors,
            probes,
            history_path,
        } = seen;
        let acked = ids_with(&injected.burst.results, Outcome::Ok);
        let counts = Counts::of(&injected.burst.results);
        // Lost: acknowledged ids some node lacked at the deadline, as the
        // node records already list them.
        let lost: HashSet<&str> = nodes
            .iter()
            .flat_map(|n| n.missing_acked.iter().map(String::as_str))
            .collect();
        let lost_acked = lost.len() as u64;
        let acked_everywhere = if views.iter().any(|v| v.held.is_some()) {
            acked.len() as u64 - lost_acked
        } else {
            0
        };
        let convergence_bound = ratio("convergence_bound", acked_everywhere, acked.len() as u64)?;
        let present: HashSet<&str> = views
            .iter()
            .filter_map(|v| v.held.as_ref())
            .flatten()
            .map(String::as_str)
            .collect();
        let refused_but_present: Vec<String> = injected
            .burst
            .results
            .iter()
            .chain(&recovery.writes_detail)
            .filter(|r| matches!(r.outcome, Outcome::QuorumNotMet | Outcome::Fail))
            .filter(|r| present.contains(r.id.as_str()))
            .map(|r| r.id.clone())
            .collect();
        let unexpected: Vec<(u16, u64, String)> = injected
            .burst
            .unexpected_bodies
            .iter()
            .map(|(status, body)| {
                let n = injected
                    .burst
                    .results
                    .iter()
                    .filter(|r| r.outcome == Outcome::Unexpected && r.status == Some(*status))
                    .count() as u64;
                (*status, n, body.clone())
            })
            .collect();

        let judgement = crate::verdict::judge(&crate::verdict::Facts {
            faults: &self
                .faults
                .iter()
                .map(|f| f.meta.label())
                .collect::<Vec<_>>(),
            plugin_errors: &plugin_errors,
            denials: &injected.denials,
            effects: &effects,
            nodes: &nodes,
            counts: &counts,
            unexpected: &unexpected,
            ok_status: c.file.write.as_ref().map_or(&[][..], |w| &w.ok_status[..]),
            lost_acked,
            tolerate_lost_ratio: c.file.campaign.tolerate_lost_ratio,
            verdicts: &verdicts,
            probe_failures: &probes.as_ref().map(|p| p.failures()).unwrap_or_default(),
            recovery: (recovery.wanted > 0).then_some(&recovery),
        });

        Ok(CycleRecord {
            class: self.class.to_string(),
            cycle,
            seed,
            namespace: namespace.to_string(),
            status: judgement.status,
            reasons: judgement.reasons,
            counts,
            acked_everywhere,
            lost_acked,
            tolerated_lost: judgement.tolerated_lost,
            convergence_bound,
            refused_but_present,
            probes,
            nodes,
            effects,
            verdicts,
            denials: injected.denials,
            latency: Latency::of(&injected.burst.results),
            recovery: (recovery.wanted > 0).then_some(recovery),
            phases_ms: BTreeMap::new(),
            evidence: None,
            writes_detail: injected.burst.results,
            history: Some(history_path.display().to_string()),
        })
    }

    /// The burst through the primary and, concurrently, the fault plugin.
    async fn inject(
        &self,
        (cluster, client): (&Cluster, &Client),
        info: &CycleInfo,
        ids: Arc<Vec<String>>,
        (started, history): (Instant, &Arc<Recorder>),
    ) -> Injected {
        let c = self.campaign;
        let (progress_tx, progress_rx) = watch::channel(Progress::default());
        let scope = Scope {
            nodes: cluster.nodes.clone(),
            disks: cluster.disks.clone(),
            net: cluster.net.clone(),
            journal: self.journal.clone(),
            http: self.http.clone(),
            clock: cluster.clock.clone(),
            leader: c.file.leader.clone().map(Arc::new),
        };
        let effects = Effects::new(scope, started, progress_rx);
        let deadline = Duration::from_millis(c.file.campaign.plugin_timeout_ms);
        let (set_ups, tokens) = chaos_effects::SetUps::new(self.faults.len());
        let fault_calls = self.faults.iter().zip(tokens).map(|(f, set_up)| {
            let effects = effects.clone();
            let info = CycleInfo {
                params: f.params().to_vec(),
                seed: plugin_seed(info.seed, &f.meta.name, self.faults.len()),
                ..info.clone()
            };
            let call = async move {
                let (result, refused) = f.inject(&info, effects.clone(), set_up, deadline).await;
                if result.is_err() {
                    // A plugin that trapped, timed out or failed loses its
                    // leases at once, not when they would have ended (in a
                    // composed class, the others' too: the cycle failed).
                    effects.revert_all().await;
                }
                (result, refused)
            };
            chaos_effects::ASKED_BY.scope(f.meta.label(), call)
        });
        let fault_calls = futures::future::join_all(fault_calls);
        let primary = info.primary;
        let target = workload::Target {
            index: primary,
            port: cluster.nodes[primary as usize].client,
            ids,
            history: Some(history.clone()),
        };
        let burst = async {
            if !set_ups.wait(chaos_effects::SET_UP_CAP).await {
                tracing::debug!(
                    "a fault plugin neither waited nor returned in time; burst started"
                );
            }
            workload::burst(c, client, target, progress_tx, started).await
        };
        let (burst, faults) = tokio::join!(burst, fault_calls);
        let mut fault_errors = Vec::new();
        let mut denials = Vec::new();
        for (result, refused) in faults {
            fault_errors.extend(result.err().map(|e| e.to_string()));
            denials.extend(refused);
        }
        Injected {
            burst,
            effects,
            fault_errors,
            denials,
            started,
        }
    }

    /// Undo every effect still in force, whatever the plugin did or failed
    /// to do.
    async fn heal(&self, effects: &Effects) {
        effects.revert_all().await;
    }

    /// Run every assertion plugin on the cycle's observations. A plugin that
    /// fails, or gives a ratio outside [0, 1], fails this cycle only.
    async fn assert(
        &self,
        info: &CycleInfo,
        results: &[WriteResult],
        views: &[NodeView],
        history: &Arc<History>,
    ) -> (Vec<AssertionVerdict>, Vec<String>) {
        let mut verdicts = Vec::new();
        let mut errors = Vec::new();
        if self.assertions.is_empty() {
            return (verdicts, errors);
        }
        let by = |o: &[Outcome]| -> Vec<String> {
            results
                .iter()
                .filter(|r| o.contains(&r.outcome))
                .map(|r| r.id.clone())
                .collect()
        };
        let mut observations = Observations {
            cycle: info.clone(),
            acked: by(&[Outcome::Ok]),
            quorum_not_met: by(&[Outcome::QuorumNotMet]),
            failed: by(&[Outcome::Fail, Outcome::Unexpected]),
            unexpected: by(&[Outcome::Unexpected]),
            indeterminate: by(&[Outcome::Indeterminate]),
            nodes: views
                .iter()
                .enumerate()
                .map(|(i, v)| NodeObservation {
                    node: i as u32,
                    state: match (&v.held, &v.read_error) {
                        (Some(_), _) => NodeState::Up,
                        (None, Some(_)) => NodeState::Silent,
                        (None, None) => NodeState::Exited,
                    },
                    ids: v.held.clone().unwrap_or_default(),
                    converged_ms: v.converged_ms,
                })
                .collect(),
            threshold: self.campaign.file.campaign.threshold,
            history: history.clone(),
        };
        let deadline = Duration::from_millis(self.campaign.file.campaign.plugin_timeout_ms);
        for a in self.assertions {
            // Each assertion sees its own parameters (they used to be the
            // fault's, and its own never reached it).
            observations.cycle.params = a.params().to_vec();
            match a.check(&observations, deadline).await {
                Ok(v) => {
                    let ratios = v.figures.iter().filter(|(name, _)| {
                        name == "convergence_bound" || name.ends_with("_ratio")
                    });
                    for (name, value) in ratios {
                        if let Err(e) = check_unit(&format!("{} figure {name}", v.plugin), *value) {
                            errors.push(format!(
                                "{e:#}; the plugin is wrong, this cycle cannot be judged by it"
                            ));
                        }
                    }
                    verdicts.push(v);
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        (verdicts, errors)
    }
}

/// The ids of the writes that came to `outcome`.
fn ids_with(results: &[WriteResult], outcome: Outcome) -> Vec<&str> {
    results
        .iter()
        .filter(|r| r.outcome == outcome)
        .map(|r| r.id.as_str())
        .collect()
}

/// Each node as the record and the judge see it: how it ended, what it
/// held, what it lacked, and when it converged.
fn node_records(
    nodes: &[Arc<Node>],
    views: &[NodeView],
    acked: &[&str],
    started: Instant,
) -> Vec<NodeRecord> {
    nodes
        .iter()
        .zip(views)
        .map(|(node, view)| {
            let exit = node.exit();
            let (since, restarts) = node.started();
            let missing_acked = match &view.held {
                Some(h) => {
                    let s: HashSet<&str> = h.iter().map(String::as_str).collect();
                    acked
                        .iter()
                        .filter(|id| !s.contains(*id))
                        .map(|id| id.to_string())
                        .collect()
                }
                None => vec![],
            };
            NodeRecord {
                node: node.index,
                port: node.port,
                alive: exit.is_none(),
                exit: exit.map(|e| e.describe()),
                died_at_ms: exit.map(|e| signed_ms(e.at, started)),
                restarts,
                restarted_at_ms: (restarts > 0).then(|| signed_ms(since, started)),
                log_tail: exit.map(|_| node.log_tail(LOG_TAIL_LINES)),
                read_error: view.read_error.clone(),
                held: view.held.as_ref().map_or(0, Vec::len),
                missing_acked,
                converged_ms: view.converged_ms,
                late: view.late.clone(),
            }
        })
        .collect()
}

/// `at - zero` in ms, negative when `at` came first.
fn signed_ms(at: Instant, zero: Instant) -> i64 {
    match at.checked_duration_since(zero) {
        Some(d) => d.as_millis() as i64,
        None => -(zero.duration_since(at).as_millis() as i64),
    }
}
