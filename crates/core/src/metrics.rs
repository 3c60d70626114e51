//! Per-cycle records and per-class summaries. Ratios are computed from ids,
//! never from counts, and a ratio outside [0, 1] is a harness error, never a
//! figure (counts summed over reused cycles once published a bound of 6.286).

use crate::workload::{Outcome, WriteResult};
use chaos_effects::EffectRecord;
use chaos_plugin::AssertionVerdict;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    Fail,
    /// The fault did not take effect: not a pass.
    Ineffective,
    /// An assertion could not decide.
    Unknown,
    /// A plugin trapped, timed out or returned an error.
    Error,
    /// The fault could not be applied to this target and was only recorded
    /// (e.g. a clock skew on a static binary): never a pass.
    Simulated,
    /// Nothing was tested: no write was acknowledged.
    Vacuous,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Ineffective => "ineffective",
            Status::Unknown => "unknown",
            Status::Error => "error",
            Status::Simulated => "simulated",
            Status::Vacuous => "vacuous",
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Counts {
    pub writes: u64,
    pub ok: u64,
    pub quorum_not_met: u64,
    pub fail: u64,
    pub indeterminate: u64,
    /// Answers with a status the campaign does not classify.
    #[serde(default)]
    pub unexpected: u64,
}

impl Counts {
    pub fn of(results: &[WriteResult]) -> Self {
        let mut c = Counts {
            writes: results.len() as u64,
            ..Default::default()
        };
        for r in results {
            match r.outcome {
                Outcome::Ok => c.ok += 1,
                Outcome::QuorumNotMet => c.quorum_not_met += 1,
                Outcome::Fail => c.fail += 1,
                Outcome::Indeterminate => c.indeterminate += 1,
                Outcome::Unexpected => c.unexpected += 1,
            }
        }
        c
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct NodeRecord {
    pub node: u32,
    pub port: u16,
    pub alive: bool,
    /// How the node ended, when it did not survive the cycle.
    pub exit: Option<String>,
    /// When it ended, ms from the burst start (negative: before it).
    pub died_at_ms: Option<i64>,
    /// Times an effect restarted it this cycle; its exit and `died_at_ms`
    /// are those of the process the last restart started.
    pub restarts: u32,
    /// When the last restart started its current process, ms from the
    /// burst start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarted_at_ms: Option<i64>,
    /// The end of its log, when it died.
    pub log_tail: Option<String>,
    /// Why a live node's last read-back gave no ids (a liveness finding).
    pub read_error: Option<String>,
    /// Ids of this cycle the node holds.
    pub held: usize,
    /// Acknowledged ids this node lacks at the end of the convergence
    /// window (live nodes only).
    pub missing_acked: Vec<String>,
    /// ms from the heal until the node held every acknowledged id; none
    /// when it never did.
    pub converged_ms: Option<u64>,
    /// Acknowledged ids that were missing at the first read-back after the
    /// heal and arrived later, with when.
    pub late: Vec<Late>,
}

/// An acknowledged id that reached a node only after the heal.
#[derive(Clone, Debug, Serialize)]
pub struct Late {
    pub id: String,
    /// ms from the heal until a read-back first showed it.
    pub after_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(results: &[WriteResult]) -> Option<Self> {
        let mut h = hdrhistogram::Histogram::<u64>::new(3).ok()?;
        for r in results {
            h.record(r.latency_us.max(1)).ok()?;
        }
        (!h.is_empty()).then(|| Latency {
            p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            max_ms: h.max() as f64 / 1000.0,
        })
    }
}

/// One line of cycles.jsonl.
#[derive(Clone, Debug, Serialize)]
pub struct CycleRecord {
    pub class: String,
    pub cycle: u32,
    pub seed: u64,
    pub namespace: String,
    pub status: Status,
    pub reasons: Vec<String>,
    #[serde(flatten)]
    pub counts: Counts,
    /// Acknowledged writes present on every live node.
    pub acked_everywhere: u64,
    pub lost_acked: u64,
    /// Lost acknowledged writes let through by `campaign.tolerate_lost_ratio`.
    pub tolerated_lost: u64,
    pub convergence_bound: f64,
    /// Refused or failed writes that nevertheless appear on some node.
    pub refused_but_present: Vec<String>,
    /// The quorum probes, when the campaign asks for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probes: Option<crate::probes::QuorumProbes>,
    pub nodes: Vec<NodeRecord>,
    pub effects: Vec<EffectRecord>,
    pub verdicts: Vec<AssertionVerdict>,
    /// Capability uses the host refused during the fault.
    pub denials: Vec<String>,
    pub latency: Option<Latency>,
    /// The recovery window after the heal; none when `[recovery] writes = 0`.
    pub recovery: Option<RecoveryRecord>,
    /// Wall time per phase, ms.
    pub phases_ms: BTreeMap<&'static str, u64>,
    /// Where the evidence of a non-passing cycle was kept.
    pub evidence: Option<String>,
    /// Every write, in issue order (for timelines and replay).
    pub writes_detail: Vec<WriteResult>,
    /// The cycle's `history.jsonl` (every operation), under the out dir.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
}

/// What a class summary needs of one cycle: built from a [`CycleRecord`] as
/// it ends, or read back from a `cycles.jsonl` line when a run resumes.
#[derive(Clone, Debug, Deserialize)]
pub struct Tally {
    pub class: String,
    pub cycle: u32,
    pub status: Status,
    #[serde(flatten)]
    pub counts: Counts,
    pub acked_everywhere: u64,
    pub lost_acked: u64,
    #[serde(default)]
    pub tolerated_lost: u64,
    #[serde(default)]
    pub probes: Option<crate::probes::QuorumProbes>,
}

impl CycleRecord {
    pub fn tally(&self) -> Tally {
        Tally {
            class: self.class.clone(),
            cycle: self.cycle,
            status: self.status,
            counts: self.counts.clone(),
            acked_everywhere: self.acked_everywhere,
            lost_acked: self.lost_acked,
            tolerated_lost: self.tolerated_lost,
            probes: self.probes.clone(),
        }
    }
}

/// `num / den` as a ratio that must lie in [0, 1]; 1.0 when `den` is 0.
pub fn ratio(name: &str, num: u64, den: u64) -> anyhow::Result<f64> {
    let r = if den == 0 {
        1.0
    } else {
        num as f64 / den as f64
    };
    check_unit(name, r)?;
    Ok(r)
}

/// A figure that must lie in [0, 1]; anything else means the harness is
/// wrong, and is reported as such.
pub fn check_unit(name: &str, value: f64) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&value) {
        anyhow::bail!(
            "harness error: {name} = {value} lies outside [0, 1]; refusing to report it as a result"
        );
    }
    Ok(())
}

/// A fault class over all its cycles, as in summary.json.
#[derive(Clone, Debug, Serialize)]
pub struct ClassSummary {
    pub fault: String,
    pub plugin: Option<String>,
    pub cycles: u32,
    #[serde(flatten)]
    pub counts: Counts,
    pub acked_everywhere: u64,
    pub lost_acked: u64,
    /// Of `lost_acked`, what `campaign.tolerate_lost_ratio` let through.
    pub tolerated_lost: u64,
    pub convergence_bound: f64,
    pub threshold: f64,
    pub passed_cycles: u32,
    pub failed_cycles: u32,
    pub ineffective_cycles: u32,
    pub unknown_cycles: u32,
    pub error_cycles: u32,
    pub simulated_cycles: u32,
    pub vacuous_cycles: u32,
    /// The quorum probes over the class, when the campaign runs them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quorum_probes: Option<ProbeSummary>,
    pub pass: bool,
    pub reasons: Vec<String>,
}

/// The quorum probes of a class: how many cycles ran them, how many passed,
/// and every refused probe write a node held anyway.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProbeSummary {
    pub ran: u32,
    pub skipped: u32,
    pub passed: u32,
    pub refused_but_present: Vec<String>,
}

impl ClassSummary {
    pub fn new(fault: &str, plugin: Option<String>, threshold: f64) -> Self {
        Self {
            fault: fault.into(),
            plugin,
            cycles: 0,
            counts: Counts::default(),
            acked_everywhere: 0,
            lost_acked: 0,
            tolerated_lost: 0,
            convergence_bound: 1.0,
            threshold,
            passed_cycles: 0,
            failed_cycles: 0,
            ineffective_cycles: 0,
            unknown_cycles: 0,
            error_cycles: 0,
            simulated_cycles: 0,
            vacuous_cycles: 0,
            quorum_probes: None,
            pass: false,
            reasons: vec![],
        }
    }

    pub fn add(&mut self, c: &Tally) -> anyhow::Result<()> {
        self.cycles += 1;
        self.counts.writes += c.counts.writes;
        self.counts.ok += c.counts.ok;
        self.counts.quorum_not_met += c.counts.quorum_not_met;
        self.counts.fail += c.counts.fail;
        self.counts.indeterminate += c.counts.indeterminate;
        self.counts.unexpected += c.counts.unexpected;
        self.acked_everywhere += c.acked_everywhere;
        self.lost_acked += c.lost_acked;
        self.tolerated_lost += c.tolerated_lost;
        match c.status {
            Status::Pass => self.passed_cycles += 1,
            Status::Fail => self.failed_cycles += 1,
            Status::Ineffective => self.ineffective_cycles += 1,
            Status::Unknown => self.unknown_cycles += 1,
            Status::Error => self.error_cycles += 1,
            Status::Simulated => self.simulated_cycles += 1,
            Status::Vacuous => self.vacuous_cycles += 1,
        }
        if let Some(p) = &c.probes {
            let sum = self.quorum_probes.get_or_insert_with(ProbeSummary::default);
            if p.skipped.is_some() {
                sum.skipped += 1;
            } else {
                sum.ran += 1;
                sum.passed += u32::from(p.failures().is_empty());
            }
            sum.refused_but_present
                .extend(p.refused_but_present.iter().cloned());
        }
        self.convergence_bound = ratio("convergence_bound", self.acked_everywhere, self.counts.ok)?;
        Ok(())
    }

    /// A class passes only when every cycle passed (the judge's statuses,
    /// [`crate::verdict`]) and the class's convergence bound meets the
    /// threshold (the per-class figure the original quorum protocol judged
    /// by; with durability binary per cycle it can only fall below 1
    /// through tolerated losses).
    pub fn finish(&mut self) {
        let mut reasons = vec![];
        if self.cycles == 0 {
            reasons.push("no cycle ran".to_string());
        }
        if self.convergence_bound < self.threshold {
            reasons.push(format!(
                "convergence_bound {:.4} < threshold {}; {} acknowledged write(s) lost",
                self.convergence_bound, self.threshold, self.lost_acked
            ));
        }
        for (n, what) in [
            (
                self.failed_cycles,
                "cycle(s) failed: a lost write, a dead or silent node, a failing assertion or probe",
            ),
            (
                self.vacuous_cycles,
                "cycle(s) tested nothing (no write acknowledged)",
            ),
            (
                self.ineffective_cycles,
                "cycle(s) where the fault did not take effect",
            ),
            (self.unknown_cycles, "cycle(s) an assertion could not judge"),
            (self.error_cycles, "cycle(s) where a plugin failed"),
            (
                self.simulated_cycles,
                "cycle(s) where the fault was only simulated (not applied)",
            ),
        ] {
            if n > 0 {
                reasons.push(format!("{n} {what}"));
            }
        }
        self.pass = reasons.is_empty();
        if self.tolerated_lost > 0 {
            reasons.push(format!(
                "tolerated: {} acknowledged write(s) lost within campaign.tolerate_lost_ratio",
                self.tolerated_lost
            ));
        }
        self.reasons = reasons;
    }
}

/// What the recovery window found.
#[derive(Clone, Debug, Serialize)]
pub struct RecoveryRecord {
    /// Writes that had to be acknowledged (`[recovery] writes`).
    pub wanted: u32,
    pub acked: u32,
    /// Writes tried, acknowledged or not.
    pub tried: u32,
    pub deadline_ms: u64,
    /// Ms from the heal to the first acknowledged write.
    pub first_ack_ms: Option<u64>,
    /// Ms from the heal until `wanted` were acknowledged.
    pub recovered_ms: Option<u64>,
    /// Ms from the heal to the last acknowledged write: convergence gives
    /// it `settle_ms` from there, as the burst's get from the heal.
    pub last_ack_ms: Option<u64>,
    /// The last refusal, e.g. `node 0: 503 (quorum_not_met)`.
    pub last_refusal: Option<String>,
    /// Why the check was not made (no node `[recovery] through` allows was
    /// alive): the cycle is judged on the rest. Absent in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Acknowledged recovery writes a live node lacked at the end of the
    /// convergence window.
    pub lost: Vec<String>,
    /// Every recovery write, as `writes_detail` holds the burst's.
    pub writes_detail: Vec<WriteResult>,
}

impl RecoveryRecord {
    pub fn recovered(&self) -> bool {
        self.acked >= self.wanted
    }

    /// Whether "not recovered" is a finding: not when the check was
    /// skipped.
    pub fn judged_unrecovered(&self) -> bool {
        self.skipped.is_none() && !self.recovered()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_outside_unit_is_a_harness_error() {
        assert_eq!(ratio("x", 0, 0).unwrap(), 1.0);
        assert_eq!(ratio("x", 3, 4).unwrap(), 0.75);
        let e = ratio("convergence_bound", 44, 7).unwrap_err().to_string();
        assert!(e.contains("harness error") && e.contains("6.28"), "{e}");
    }

    fn tally(status: Status, ok: u64, lost: u64, tolerated: u64) -> Tally {
        Tally {
            class: "c".into(),
            cycle: 1,
            status,
            counts: Counts {
                writes: 100,
                ok,
                ..Counts::default()
            },
            acked_everywhere: ok - lost,
            lost_acked: lost,
            tolerated_lost: tolerated,
            probes: None,
        }
    }

    /// A class passes only when every cycle passed: one vacuous cycle among
    /// passing ones fails it, a tolerated loss passes and says so.
    #[test]
    fn a_class_passes_only_when_every_cycle_does() {
        let class = |tallies: &[Tally]| {
            let mut s = ClassSummary::new("c", None, 0.995);
            for t in tallies {
                s.add(t).unwrap();
            }
            s.finish();
            s
        };
        let ok = tally(Status::Pass, 100, 0, 0);
        assert!(class(&[ok.clone(), ok.clone()]).pass);
        let s = class(&[ok.clone(), tally(Status::Vacuous, 0, 0, 0)]);
        assert!(!s.pass && s.vacuous_cycles == 1, "{:?}", s.reasons);
        assert!(s.reasons.iter().any(|r| r.contains("tested nothing")));
        let s = class(&[ok.clone(), tally(Status::Fail, 100, 1, 0)]);
        assert!(
            !s.pass,
            "one lost write fails the class though 199/200 >= 0.995"
        );
        let s = class(&[ok.clone(), tally(Status::Pass, 100, 1, 1)]);
        assert!(s.pass && s.tolerated_lost == 1, "{:?}", s.reasons);
        assert!(s.reasons.iter().any(|r| r.starts_with("tolerated: 1")));
        assert!(!class(&[]).pass, "no cycle ran");
    }

    #[test]
    fn counts_classify_every_outcome() {
        let w = |o| WriteResult {
            id: "a".into(),
            outcome: o,
            status: None,
            start_us: 0,
            latency_us: 5,
        };
        let c = Counts::of(&[
            w(Outcome::Ok),
            w(Outcome::Ok),
            w(Outcome::QuorumNotMet),
            w(Outcome::Fail),
            w(Outcome::Indeterminate),
            w(Outcome::Unexpected),
        ]);
        assert_eq!(
            (
                c.writes,
                c.ok,
                c.quorum_not_met,
                c.fail,
                c.indeterminate,
                c.unexpected
            ),
            (6, 2, 1, 1, 1, 1)
        );
    }
}
