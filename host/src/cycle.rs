//! One cycle of a campaign.
//!
//! [`Cycle::step`] runs, in order:
//! 1. **fresh world**: new data dirs, namespace and free ports; spawn; ready;
//! 2. **burst + fault**: the fault plugin's `inject` runs concurrently with
//!    the burst and asks the host for effects;
//! 3. **heal**: every effect still in force is undone by the host;
//! 4. **settle**, then **observe**: read back, per live node, which ids it holds;
//! 5. **assert**: assertion plugins judge the observations;
//! 6. **teardown**: SIGKILL process groups, reap, check ports are free.
//!
//! Harness failures (a node that never became ready, garbage read-back, a
//! ratio outside [0, 1]) are errors of the step; plugin failures fail the
//! cycle with a reason and the campaign goes on.

use crate::campaign::Campaign;
use crate::effects::{Effects, Scope};
use crate::journal::Journal;
use crate::lifecycle::{Cluster, Node, Placement};
use crate::metrics::{Counts, CycleRecord, Latency, NodeRecord, Status, check_unit, ratio};
use crate::net::Network;
use crate::plugin::{AssertionVerdict, Loaded, bindings_types as types};
use crate::workload::{self, Outcome, Progress};
use anyhow::Context;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Everything a cycle needs that outlives it.
pub struct Cycle<'a> {
    pub campaign: &'a Campaign,
    pub http: &'a reqwest::Client,
    pub fault: Option<&'a Loaded>,
    pub assertions: &'a [Loaded],
    pub class: &'a str,
    /// Short id of this run, part of every namespace and write id.
    pub run_id: &'a str,
    pub writes: u32,
    pub settle: Duration,
    pub network: &'a Network,
    pub journal: &'a Arc<Journal>,
    /// libfaketime, preloaded into nodes when the fault skews clocks.
    pub faketime: Option<&'a Path>,
}

impl Cycle<'_> {
    pub async fn step(&self, cycle: u32, seed: u64, dir: &Path) -> anyhow::Result<CycleRecord> {
        let c = self.campaign;
        let mut phases = BTreeMap::new();
        let namespace = format!("chaos-{}-{}-c{cycle}", self.run_id, self.class);
        let t = Instant::now();
        let place = Placement {
            network: self.network,
            journal: self.journal,
            faketime: self.faketime,
        };
        let mut cluster = Cluster::start(c, dir, cycle, &namespace, self.http, place)
            .await
            .with_context(|| format!("cycle {cycle} of {}", self.class))?;
        phases.insert("start", t.elapsed().as_millis() as u64);

        let result = self
            .run_started(&cluster, cycle, seed, &namespace, &mut phases)
            .await;

        let t = Instant::now();
        let torn = cluster.teardown().await;
        phases.insert("teardown", t.elapsed().as_millis() as u64);
        let mut record = result?;
        torn.with_context(|| format!("cycle {cycle} teardown"))?;
        record.phases_ms = phases;
        Ok(record)
    }

    async fn run_started(
        &self,
        cluster: &Cluster,
        cycle: u32,
        seed: u64,
        namespace: &str,
        phases: &mut BTreeMap<&'static str, u64>,
    ) -> anyhow::Result<CycleRecord> {
        let c = self.campaign;
        let primary = c.file.system.primary;
        let ids: Arc<Vec<String>> = Arc::new(
            (0..self.writes)
                .map(|i| format!("{namespace}-w{i}"))
                .collect(),
        );
        let (progress_tx, progress_rx) = watch::channel(Progress::default());
        let started = Instant::now();
        let scope = Scope {
            nodes: cluster.nodes.clone(),
            net: cluster.net.clone(),
            journal: self.journal.clone(),
            http: self.http.clone(),
            clock: cluster.clock.clone(),
            leader: c.file.leader.clone().map(Arc::new),
        };
        let effects = Effects::new(scope, started, progress_rx);
        let cycle_info = types::CycleInfo {
            cycle,
            seed,
            nodes: c.file.system.nodes,
            primary,
            writes: self.writes,
            params: self.fault.map(|f| f.params().to_vec()).unwrap_or_default(),
        };
        let plugin_deadline = Duration::from_millis(c.file.campaign.plugin_timeout_ms);

        // Burst and fault run together; the fault times itself on progress.
        let fault_call = async {
            let f = self.fault?;
            let (result, refused) = f
                .inject(cycle_info.clone(), effects.clone(), plugin_deadline)
                .await;
            if result.is_err() {
                // A plugin that trapped, timed out or failed loses its
                // leases at once, not when they would have ended.
                effects.revert_all().await;
            }
            Some((result, refused))
        };
        let primary_port = cluster.nodes[primary as usize].port;
        let target = workload::Target {
            index: primary,
            port: primary_port,
            ids: ids.clone(),
            namespace,
            cycle,
        };
        let burst = workload::burst(c, self.http, target, progress_tx, started);
        let (burst, fault_result) = tokio::join!(burst, fault_call);
        // Heal: whatever the plugin did or failed to do.
        effects.revert_all().await;
        phases.insert("burst", burst.elapsed.as_millis() as u64);
        phases.insert("fault", started.elapsed().as_millis() as u64);

        let mut reasons = Vec::new();
        let mut status = Status::Pass;
        let mut denials = Vec::new();
        if let Some((result, refused)) = fault_result {
            denials = refused;
            if let Err(e) = result {
                status = Status::Error;
                reasons.push(e.to_string());
            }
            for d in &denials {
                reasons.push(format!("host refused: {d}"));
            }
        }
        let effect_records = effects.records();
        if self.fault.is_some() && status == Status::Pass {
            let took = effect_records.iter().any(|e| e.verified && e.during_burst);
            let simulated: Vec<&str> = effect_records
                .iter()
                .filter(|e| e.simulated)
                .map(|e| e.evidence.as_str())
                .collect();
            if !simulated.is_empty() {
                // Never a pass of a real fault: the effect was only recorded.
                status = Status::Simulated;
                reasons.extend(simulated.iter().map(|e| format!("simulated: {e}")));
            } else if !took {
                status = Status::Ineffective;
                reasons.push(if effect_records.is_empty() {
                    "the fault requested no effect".to_string()
                } else {
                    let seen: Vec<String> = effect_records
                        .iter()
                        .map(|e| format!("{} {}: {}", e.kind, e.detail, e.evidence))
                        .collect();
                    format!(
                        "no effect was verified while the burst ran ({})",
                        seen.join("; ")
                    )
                });
            }
        }

        let t = Instant::now();
        tokio::time::sleep(self.settle).await;
        phases.insert("settle", t.elapsed().as_millis() as u64);

        // Observe: which ids each live node holds.
        let t = Instant::now();
        let issued: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut held: Vec<Option<Vec<String>>> = Vec::new();
        for node in &cluster.nodes {
            if !node.alive() {
                held.push(None);
                continue;
            }
            let got =
                workload::read_ids(c, self.http, node.index, node.port, namespace, cycle).await?;
            let foreign = workload::foreign(&got, &issued);
            if !foreign.is_empty() {
                anyhow::bail!(
                    "harness error: node {} returned {} id(s) this cycle never wrote (e.g. {:?}): cycles are not isolated; check that read.url filters by {{namespace}}",
                    node.index,
                    foreign.len(),
                    &foreign[..foreign.len().min(3)]
                );
            }
            held.push(Some(got));
        }
        phases.insert("observe", t.elapsed().as_millis() as u64);

        let counts = Counts::of(&burst.results);
        let acked: Vec<&str> = burst
            .results
            .iter()
            .filter(|r| r.outcome == Outcome::Ok)
            .map(|r| r.id.as_str())
            .collect();
        let sets: Vec<Option<HashSet<&str>>> = held
            .iter()
            .map(|h| h.as_ref().map(|v| v.iter().map(String::as_str).collect()))
            .collect();
        let mut nodes = Vec::new();
        for (node, set) in cluster.nodes.iter().zip(&sets) {
            let missing_acked: Vec<String> = match set {
                Some(s) => acked
                    .iter()
                    .filter(|id| !s.contains(*id))
                    .map(|s| s.to_string())
                    .collect(),
                None => vec![],
            };
            nodes.push(NodeRecord {
                node: node.index,
                port: node.port,
                alive: set.is_some(),
                exit: node.exit_status().map(Node::describe_exit),
                held: set.as_ref().map_or(0, |s| s.len()),
                missing_acked,
            });
        }
        let live: Vec<&HashSet<&str>> = sets.iter().flatten().collect();
        let acked_everywhere = acked
            .iter()
            .filter(|id| !live.is_empty() && live.iter().all(|s| s.contains(*id)))
            .count() as u64;
        let lost_acked = acked.len() as u64 - acked_everywhere;
        let convergence_bound = ratio("convergence_bound", acked_everywhere, acked.len() as u64)?;
        let refused_but_present: Vec<String> = burst
            .results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::QuorumNotMet | Outcome::Fail))
            .filter(|r| sets.iter().flatten().any(|s| s.contains(r.id.as_str())))
            .map(|r| r.id.clone())
            .collect();
        if live.is_empty() {
            reasons.push("no node alive after settle".into());
        }

        // Assert.
        let t = Instant::now();
        let by = |o: Outcome| -> Vec<String> {
            burst
                .results
                .iter()
                .filter(|r| r.outcome == o)
                .map(|r| r.id.clone())
                .collect()
        };
        let observations = types::Observations {
            cycle: cycle_info,
            acked: by(Outcome::Ok),
            quorum_not_met: by(Outcome::QuorumNotMet),
            failed: by(Outcome::Fail),
            indeterminate: by(Outcome::Indeterminate),
            nodes: cluster
                .nodes
                .iter()
                .zip(&held)
                .map(|(n, h)| types::NodeObservation {
                    node: n.index,
                    alive: h.is_some(),
                    ids: h.clone().unwrap_or_default(),
                })
                .collect(),
            threshold: c.file.campaign.threshold,
        };
        let mut verdicts: Vec<AssertionVerdict> = Vec::new();
        for a in self.assertions {
            match a.check(observations.clone(), plugin_deadline).await {
                Ok(v) => {
                    for (name, value) in &v.figures {
                        if name == "convergence_bound" || name.ends_with("_ratio") {
                            check_unit(&format!("{} figure {name}", v.plugin), *value)?;
                        }
                    }
                    match (v.outcome, status) {
                        ("fail", Status::Pass | Status::Unknown | Status::Simulated) => {
                            status = Status::Fail
                        }
                        ("unknown", Status::Pass) => status = Status::Unknown,
                        _ => {}
                    }
                    if v.outcome != "pass" {
                        reasons.extend(v.reasons.iter().map(|r| format!("{}: {r}", v.plugin)));
                    }
                    verdicts.push(v);
                }
                Err(e) => {
                    status = Status::Error;
                    reasons.push(e.to_string());
                }
            }
        }
        phases.insert("assert", t.elapsed().as_millis() as u64);

        // Probes run last: they kill peers, so the figures are taken first.
        let probes = if c.file.probes.quorum {
            let t = Instant::now();
            let p = crate::probes::quorum(c, self.http, &cluster.nodes, namespace, cycle).await?;
            let failed = p.failures();
            if !failed.is_empty() && matches!(status, Status::Pass | Status::Unknown) {
                status = Status::Fail;
            }
            reasons.extend(failed);
            phases.insert("probes", t.elapsed().as_millis() as u64);
            Some(p)
        } else {
            None
        };

        Ok(CycleRecord {
            class: self.class.to_string(),
            cycle,
            seed,
            namespace: namespace.to_string(),
            status,
            reasons,
            counts,
            acked_everywhere,
            lost_acked,
            convergence_bound,
            refused_but_present,
            probes,
            nodes,
            effects: effect_records,
            verdicts,
            denials,
            latency: Latency::of(&burst.results),
            phases_ms: BTreeMap::new(),
            evidence: None,
            writes_detail: burst.results,
        })
    }
}
