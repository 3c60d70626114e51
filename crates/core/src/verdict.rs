//! The judge: one pure function from a cycle's facts to its status and the
//! reasons for it. Nothing else in chaos-host decides whether a cycle
//! passed; the report, the summary and the bench fold the statuses it gives.
//!
//! Every status is earned. A cycle passes only when:
//! - no plugin failed and the host refused nothing the fault asked for;
//! - no node died unless an effect asked for it, and every live node
//!   answered its read-back;
//! - every acknowledged write is on every live node at the end of the
//!   convergence window (unless the campaign opts into a tolerance);
//! - at least one write was acknowledged (else nothing was tested);
//! - every effect the fault requested took hold while the burst ran, and
//!   none was only simulated;
//! - no assertion failed or could not decide, and every probe held.
//!
//! When several rules fire, the most severe status wins (see
//! [`severity`]) and every reason is kept.

use crate::metrics::RecoveryRecord;
use crate::metrics::{Counts, NodeRecord, Status};
use chaos_effects::{EffectRecord, Kind};
use chaos_plugin::AssertionVerdict;

/// Ids named in one reason, at most; the record keeps them all.
const MAX_NAMED: usize = 10;

/// What a cycle did, as the judge needs it.
pub struct Facts<'a> {
    /// The fault plugins that ran (`name@version`): none for the baseline
    /// class `none`, several for a composed class.
    pub faults: &'a [String],
    /// Plugin failures: traps, errors, timeouts, figures outside [0, 1].
    pub plugin_errors: &'a [String],
    /// Capability uses the host refused during the fault.
    pub denials: &'a [String],
    pub effects: &'a [EffectRecord],
    pub nodes: &'a [NodeRecord],
    pub counts: &'a Counts,
    /// Unexpected answers: (status, how many, first body excerpt).
    pub unexpected: &'a [(u16, u64, String)],
    /// The campaign's `write.ok_status`, to spell out a vacuous cycle.
    pub ok_status: &'a [u16],
    /// Acknowledged writes missing on some live node at the deadline.
    pub lost_acked: u64,
    /// `[campaign] tolerate_lost_ratio`, when the campaign opts in.
    pub tolerate_lost_ratio: Option<f64>,
    pub verdicts: &'a [AssertionVerdict],
    pub probe_failures: &'a [String],
    /// The recovery window, when the campaign checks it.
    pub recovery: Option<&'a RecoveryRecord>,
}

/// The judge's answer.
#[derive(Debug, PartialEq)]
pub struct Judgement {
    pub status: Status,
    pub reasons: Vec<String>,
    /// Lost acknowledged writes the campaign's tolerance let through.
    pub tolerated_lost: u64,
}

/// How bad a status is: the worst finding decides a cycle. A broken promise
/// (`fail`) outranks an unproven fault, since the system lost data (or a
/// node) whatever the fault did; a plugin `error` outranks everything, since
/// nothing in the cycle can be trusted.
pub fn severity(s: Status) -> u8 {
    match s {
        Status::Pass => 0,
        Status::Unknown => 1,
        Status::Ineffective => 2,
        Status::Simulated => 3,
        Status::Vacuous => 4,
        Status::Fail => 5,
        Status::Error => 6,
    }
}

/// Effect kinds that end a node on purpose: a death after one is asked for.
fn kills(kind: Kind) -> bool {
    kind == Kind::Signal
}

struct Verdict {
    status: Status,
    reasons: Vec<String>,
}

impl Verdict {
    fn find(&mut self, status: Status, reason: String) {
        if severity(status) > severity(self.status) {
            self.status = status;
        }
        self.reasons.push(reason);
    }
}

/// Judge one cycle.
pub fn judge(f: &Facts) -> Judgement {
    let mut v = Verdict {
        status: Status::Pass,
        reasons: Vec::new(),
    };
    for e in f.plugin_errors {
        v.find(Status::Error, e.clone());
    }
    for d in f.denials {
        v.find(
            Status::Ineffective,
            format!("host refused: {d} (the requested effect was not applied)"),
        );
    }
    nodes(f, &mut v);
    let tolerated_lost = durability(f, &mut v);
    vacuity(f, &mut v);
    if !f.faults.is_empty() {
        effects(f.faults, f.effects, &mut v);
    }
    for a in f.verdicts {
        let status = match a.outcome {
            "pass" => continue,
            "fail" => Status::Fail,
            _ => Status::Unknown,
        };
        if a.reasons.is_empty() {
            v.find(
                status,
                format!("{}: {} (no reason given)", a.plugin, a.outcome),
            );
        }
        for r in &a.reasons {
            v.find(status, format!("{}: {r}", a.plugin));
        }
    }
    for p in f.probe_failures {
        v.find(Status::Fail, p.clone());
    }
    if let Some(r) = f.recovery
        && !r.lost.is_empty()
    {
        let named: Vec<&str> = r.lost.iter().take(MAX_NAMED).map(String::as_str).collect();
        v.find(
            Status::Fail,
            format!(
                "{} acknowledged recovery write(s) missing on a live node at the end of the convergence window ({})",
                r.lost.len(),
                named.join(", ")
            ),
        );
    }
    if let Some(r) = f.recovery
        && r.judged_unrecovered()
    {
        // A burst that acknowledged nothing is vacuous, and its recovery
        // writes fail for the same reason (a wrong ok_status, a system
        // down all along): said, but not a second, graver finding.
        let status = if f.counts.ok == 0 {
            Status::Vacuous
        } else {
            Status::Fail
        };
        v.find(
            status,
            format!(
                "not recovered within {} ms of the heal: {} of {} recovery write(s) acknowledged, {} tried{}",
                r.deadline_ms,
                r.acked,
                r.wanted,
                r.tried,
                r.last_refusal
                    .as_ref()
                    .map(|l| format!("; last: {l}"))
                    .unwrap_or_default()
            ),
        );
    }
    Judgement {
        status: v.status,
        reasons: v.reasons,
        tolerated_lost,
    }
}

/// Unasked deaths and nodes that did not answer are findings.
fn nodes(f: &Facts, v: &mut Verdict) {
    for n in f.nodes {
        if let Some(exit) = &n.exit {
            // Asked for only by a kill of this node that took hold and came
            // before the death: an ignored SIGTERM does not excuse a later
            // crash. After a restart, only a kill of the process it started
            // counts: the restart's own kill ended the process before.
            let asked = f.effects.iter().any(|e| {
                let at = (e.start_us / 1000) as i64;
                kills(e.kind)
                    && e.node == n.node
                    && e.verified
                    && n.died_at_ms.is_none_or(|d| at <= d.max(0))
                    && n.restarted_at_ms.is_none_or(|r| at >= r)
            });
            if !asked {
                let when = match n.died_at_ms {
                    Some(ms) if ms < 0 => format!("{} ms before the burst started", -ms),
                    Some(ms) => format!("{ms} ms after the burst started"),
                    None => "at an unknown time".into(),
                };
                let tail = n.log_tail.as_deref().unwrap_or("(no log)");
                v.find(
                    Status::Fail,
                    format!(
                        "node {} {exit} {when}, and no effect asked for it; log tail: {tail}",
                        n.node
                    ),
                );
            }
        } else if let Some(err) = &n.read_error {
            v.find(
                Status::Fail,
                format!(
                    "node {} is alive but did not answer its read-back (liveness): {err}",
                    n.node
                ),
            );
        }
    }
    let acked = f.counts.ok;
    if acked > 0 && !f.nodes.iter().any(|n| n.exit.is_none()) {
        v.find(
            Status::Unknown,
            format!(
                "no node alive after the fault: the durability of {acked} acknowledged write(s) cannot be checked"
            ),
        );
    }
}

/// Durability is binary: any acknowledged write missing on a live node fails
/// the cycle, unless the campaign tolerates that ratio.
fn durability(f: &Facts, v: &mut Verdict) -> u64 {
    if f.lost_acked == 0 {
        return 0;
    }
    let acked = f.counts.ok.max(1);
    let ratio = f.lost_acked as f64 / acked as f64;
    let per_node: Vec<String> = f
        .nodes
        .iter()
        .filter(|n| !n.missing_acked.is_empty())
        .map(|n| {
            let named: Vec<&str> = n
                .missing_acked
                .iter()
                .take(MAX_NAMED)
                .map(String::as_str)
                .collect();
            format!(
                "node {} lacks {} ({}{})",
                n.node,
                n.missing_acked.len(),
                named.join(", "),
                if n.missing_acked.len() > MAX_NAMED {
                    ", ..."
                } else {
                    ""
                }
            )
        })
        .collect();
    let what = format!(
        "{} of {} acknowledged write(s) missing on a live node at the end of the convergence window: {}",
        f.lost_acked,
        f.counts.ok,
        per_node.join("; ")
    );
    match f.tolerate_lost_ratio {
        Some(t) if ratio <= t => {
            v.reasons.push(format!(
                "tolerated: {what} (ratio {ratio:.4} <= campaign.tolerate_lost_ratio {t})"
            ));
            f.lost_acked
        }
        _ => {
            v.find(Status::Fail, what);
            0
        }
    }
}

/// Nothing acknowledged means nothing was tested; say why in the campaign's
/// own terms. Unexpected answers are named whatever the status.
fn vacuity(f: &Facts, v: &mut Verdict) {
    let c = f.counts;
    let unexpected: Vec<String> = f
        .unexpected
        .iter()
        .map(|(status, n, _)| format!("{n} answered {status}"))
        .collect();
    if c.ok == 0 {
        let mut parts = Vec::new();
        if !unexpected.is_empty() {
            parts.push(format!(
                "{}, which write.ok_status {:?} does not list",
                unexpected.join(" and "),
                f.ok_status
            ));
        }
        for (n, what) in [
            (c.quorum_not_met, "refused with write.quorum_not_met_status"),
            (
                c.indeterminate,
                "indeterminate (timeout, dropped connection or write.indeterminate_status)",
            ),
            (c.fail, "failed (connection refused)"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if c.writes == 0 {
            parts.push("no write was issued".into());
        }
        v.find(
            Status::Vacuous,
            format!(
                "0 of {} writes acknowledged: {}; nothing was tested",
                c.writes,
                parts.join("; ")
            ),
        );
    }
    for (status, n, body) in f.unexpected {
        if c.ok > 0 {
            v.reasons.push(format!(
                "{n} write(s) answered {status}, which no write.*_status lists (counted unexpected); first body: {body:?}"
            ));
        } else {
            v.reasons
                .push(format!("first body answered with {status}: {body:?}"));
        }
    }
}

/// A cycle is effective only when every requested effect took hold while
/// the burst ran, and, in a composed class, every plugin asked for one: a
/// class named "kill+partition" whose partition never happened did not test
/// what its name says.
fn effects(faults: &[String], effects: &[EffectRecord], v: &mut Verdict) {
    if effects.is_empty() {
        v.find(
            Status::Ineffective,
            "the fault requested no effect".to_string(),
        );
    } else if faults.len() > 1 {
        for plugin in faults {
            if !effects.iter().any(|e| e.plugin.as_ref() == Some(plugin)) {
                v.find(
                    Status::Ineffective,
                    format!("{plugin} requested no effect (composed class: each plugin must)"),
                );
            }
        }
    }
    for e in effects {
        let what = format!("{} on node {} ({})", e.kind, e.node, e.detail);
        if let Some(finding) = &e.finding {
            v.find(Status::Fail, format!("{what}: {finding}"));
        } else if e.simulated {
            v.find(
                Status::Simulated,
                format!("simulated, not applied: {what}: {}", e.evidence),
            );
        } else if !e.verified {
            v.find(
                Status::Ineffective,
                format!("did not take hold: {what}: {}", e.evidence),
            );
        } else if !e.during_burst {
            v.find(
                Status::Ineffective,
                format!("applied after the burst ended, so no write saw it: {what}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effect(kind: Kind, node: u32) -> EffectRecord {
        EffectRecord {
            end_us: Some(20),
            undone_us: Some(21),
            verified: true,
            ..EffectRecord::lease(kind, node, "d".into(), Some(500), 10, true, "seen".into())
        }
    }

    fn node(i: u32) -> NodeRecord {
        NodeRecord {
            node: i,
            port: 1000 + i as u16,
            alive: true,
            exit: None,
            died_at_ms: None,
            restarts: 0,
            restarted_at_ms: None,
            log_tail: None,
            read_error: None,
            held: 100,
            missing_acked: vec![],
            converged_ms: Some(0),
            late: vec![],
        }
    }

    /// Everything a passing fault cycle has; each case changes one thing.
    struct Case {
        faults: Vec<String>,
        plugin_errors: Vec<String>,
        denials: Vec<String>,
        effects: Vec<EffectRecord>,
        nodes: Vec<NodeRecord>,
        counts: Counts,
        unexpected: Vec<(u16, u64, String)>,
        lost_acked: u64,
        tolerate: Option<f64>,
        verdicts: Vec<AssertionVerdict>,
        probes: Vec<String>,
        recovery: Option<RecoveryRecord>,
    }

    fn passing() -> Case {
        Case {
            faults: vec!["p@1".into()],
            plugin_errors: vec![],
            denials: vec![],
            effects: vec![effect(Kind::Pause, 1)],
            nodes: vec![node(0), node(1), node(2)],
            counts: Counts {
                writes: 100,
                ok: 100,
                ..Counts::default()
            },
            unexpected: vec![],
            lost_acked: 0,
            tolerate: None,
            verdicts: vec![],
            probes: vec![],
            recovery: Some(RecoveryRecord {
                wanted: 5,
                acked: 5,
                tried: 5,
                deadline_ms: 5000,
                first_ack_ms: Some(3),
                recovered_ms: Some(14),
                last_ack_ms: Some(14),
                last_refusal: None,
                skipped: None,
                lost: vec![],
                writes_detail: vec![],
            }),
        }
    }

    fn judged(c: &Case) -> Judgement {
        judge(&Facts {
            faults: &c.faults,
            plugin_errors: &c.plugin_errors,
            denials: &c.denials,
            effects: &c.effects,
            nodes: &c.nodes,
            counts: &c.counts,
            unexpected: &c.unexpected,
            ok_status: &[200],
            lost_acked: c.lost_acked,
            tolerate_lost_ratio: c.tolerate,
            verdicts: &c.verdicts,
            probe_failures: &c.probes,
            recovery: c.recovery.as_ref(),
        })
    }

    fn verdict(outcome: &'static str) -> AssertionVerdict {
        AssertionVerdict {
            plugin: "convergence@0.1.0".into(),
            outcome,
            reasons: vec!["because".into()],
            figures: vec![],
        }
    }

    fn lose_one(c: &mut Case) {
        c.counts.ok = 200;
        c.counts.writes = 200;
        c.lost_acked = 1;
        c.nodes[1].missing_acked = vec!["ns-w42".into()];
    }

    #[test]
    fn every_rule_by_table() {
        type Edit = fn(&mut Case);
        // (what, edit of a passing cycle, expected status, a reason must say)
        let table: &[(&str, Edit, Status, &str)] = &[
            ("a passing cycle", |_| {}, Status::Pass, ""),
            (
                "baseline without a fault",
                |c| {
                    c.faults.clear();
                    c.effects.clear();
                },
                Status::Pass,
                "",
            ),
            (
                "plugin trapped",
                |c| c.plugin_errors.push("plugin x: inject trapped".into()),
                Status::Error,
                "trapped",
            ),
            (
                "host refused an effect",
                |c| c.denials.push("clock not granted".into()),
                Status::Ineffective,
                "host refused: clock",
            ),
            (
                "node died unasked",
                |c| {
                    c.nodes[2].exit = Some("exited with status 124".into());
                    c.nodes[2].alive = false;
                    c.nodes[2].died_at_ms = Some(712);
                    c.nodes[2].log_tail = Some("bye".into());
                },
                Status::Fail,
                "node 2 exited with status 124 712 ms after the burst started, and no effect asked for it; log tail: bye",
            ),
            (
                "not recovered after the heal",
                |c| {
                    let r = c.recovery.as_mut().unwrap();
                    r.acked = 0;
                    r.tried = 212;
                    r.first_ack_ms = None;
                    r.recovered_ms = None;
                    r.last_refusal = Some("node 0: 503 (quorum_not_met)".into());
                },
                Status::Fail,
                "not recovered within 5000 ms of the heal: 0 of 5 recovery write(s) acknowledged, 212 tried; last: node 0: 503 (quorum_not_met)",
            ),
            (
                "partly recovered is not recovered",
                |c| c.recovery.as_mut().unwrap().acked = 4,
                Status::Fail,
                "4 of 5 recovery write(s) acknowledged",
            ),
            (
                "nothing acknowledged, before or after the heal",
                |c| {
                    c.counts.ok = 0;
                    c.counts.quorum_not_met = 100;
                    c.recovery.as_mut().unwrap().acked = 0;
                },
                Status::Vacuous,
                "not recovered within 5000 ms",
            ),
            (
                "an acknowledged recovery write lost",
                |c| c.recovery.as_mut().unwrap().lost = vec!["ns-r3".into()],
                Status::Fail,
                "1 acknowledged recovery write(s) missing on a live node at the end of the convergence window (ns-r3)",
            ),
            (
                "recovery not checked",
                |c| c.recovery = None,
                Status::Pass,
                "",
            ),
            (
                "recovery skipped: the primary killed, the rest holds",
                |c| {
                    c.effects = vec![effect(Kind::Signal, 0)];
                    c.nodes[0].exit = Some("killed by SIGKILL".into());
                    c.nodes[0].died_at_ms = Some(300);
                    let r = c.recovery.as_mut().unwrap();
                    (r.acked, r.tried, r.first_ack_ms, r.recovered_ms) = (0, 0, None, None);
                    r.skipped = Some("the primary (node 0) is down".into());
                },
                Status::Pass,
                "",
            ),
            (
                "a skipped recovery still keeps its acknowledged writes",
                |c| {
                    let r = c.recovery.as_mut().unwrap();
                    r.acked = 2;
                    r.skipped = Some("the primary (node 0) is down".into());
                    r.lost = vec!["ns-w101".into()];
                },
                Status::Fail,
                "1 acknowledged recovery write(s) missing on a live node",
            ),
            (
                "every node killed: unknown, not unrecovered",
                |c| {
                    c.effects = (0..3).map(|i| effect(Kind::Signal, i)).collect();
                    for n in &mut c.nodes {
                        n.exit = Some("killed by SIGKILL".into());
                        n.alive = false;
                    }
                    let r = c.recovery.as_mut().unwrap();
                    (r.acked, r.tried, r.first_ack_ms, r.recovered_ms) = (0, 0, None, None);
                    r.skipped = Some("every node is down: none can take writes".into());
                },
                Status::Unknown,
                "cannot be checked",
            ),
            (
                "node died before the burst",
                |c| {
                    c.nodes[2].exit = Some("killed by SIGKILL".into());
                    c.nodes[2].died_at_ms = Some(-40);
                },
                Status::Fail,
                "40 ms before the burst started",
            ),
            (
                "node killed by the fault is asked for",
                |c| {
                    c.effects = vec![effect(Kind::Signal, 0)];
                    c.nodes[0].exit = Some("killed by SIGKILL".into());
                    c.nodes[0].died_at_ms = Some(300);
                },
                Status::Pass,
                "",
            ),
            (
                "a kill of another node does not excuse a death",
                |c| {
                    c.effects = vec![effect(Kind::Signal, 0)];
                    c.nodes[0].exit = Some("killed by SIGKILL".into());
                    c.nodes[1].exit = Some("exited with status 1".into());
                },
                Status::Fail,
                "node 1 exited with status 1",
            ),
            (
                "a restarted node that is back is no death",
                |c| {
                    c.effects = vec![effect(Kind::Restart, 1)];
                    c.nodes[1].restarts = 1;
                    c.nodes[1].restarted_at_ms = Some(100);
                },
                Status::Pass,
                "",
            ),
            (
                "the process a restart started dies unasked",
                |c| {
                    c.effects = vec![effect(Kind::Restart, 1)];
                    c.nodes[1].restarts = 1;
                    c.nodes[1].restarted_at_ms = Some(100);
                    c.nodes[1].exit = Some("exited with status 3".into());
                    c.nodes[1].died_at_ms = Some(150);
                },
                Status::Fail,
                "node 1 exited with status 3 150 ms after the burst started, and no effect asked for it",
            ),
            (
                "a kill before a restart does not excuse the next process's death",
                |c| {
                    let mut kill = effect(Kind::Signal, 1);
                    kill.start_us = 50_000;
                    c.effects = vec![kill, effect(Kind::Restart, 1)];
                    c.nodes[1].restarts = 1;
                    c.nodes[1].restarted_at_ms = Some(100);
                    c.nodes[1].exit = Some("killed by SIGKILL".into());
                    c.nodes[1].died_at_ms = Some(150);
                },
                Status::Fail,
                "node 1 killed by SIGKILL 150 ms after the burst started",
            ),
            (
                "a restarted node that does not come back fails",
                |c| {
                    let mut r = effect(Kind::Restart, 1);
                    r.verified = false;
                    r.finding = Some("node 1 did not come back after its restart".into());
                    c.effects = vec![r];
                },
                Status::Fail,
                "restart on node 1 (d): node 1 did not come back after its restart",
            ),
            (
                "live node did not answer",
                |c| c.nodes[1].read_error = Some("timed out".into()),
                Status::Fail,
                "node 1 is alive but did not answer its read-back (liveness): timed out",
            ),
            (
                "one lost write of 200 fails",
                lose_one,
                Status::Fail,
                "1 of 200 acknowledged write(s) missing on a live node at the end of the convergence window: node 1 lacks 1 (ns-w42)",
            ),
            (
                "one lost write tolerated when opted in",
                |c| {
                    lose_one(c);
                    c.tolerate = Some(0.01);
                },
                Status::Pass,
                "tolerated: 1 of 200",
            ),
            (
                "tolerance exceeded",
                |c| {
                    lose_one(c);
                    c.tolerate = Some(0.001);
                },
                Status::Fail,
                "1 of 200",
            ),
            (
                "nothing acknowledged: wrong ok_status",
                |c| {
                    c.counts.ok = 0;
                    c.counts.unexpected = 100;
                    c.unexpected = vec![(201, 100, "{\"ok\":true}".into())];
                },
                Status::Vacuous,
                "0 of 100 writes acknowledged: 100 answered 201, which write.ok_status [200] does not list",
            ),
            (
                "nothing acknowledged: all refused",
                |c| {
                    c.counts.ok = 0;
                    c.counts.quorum_not_met = 100;
                },
                Status::Vacuous,
                "100 refused with write.quorum_not_met_status",
            ),
            (
                "unexpected answers beside acks are named",
                |c| {
                    c.counts.ok = 90;
                    c.counts.unexpected = 10;
                    c.unexpected = vec![(500, 10, "boom".into())];
                },
                Status::Pass,
                "10 write(s) answered 500",
            ),
            (
                "fault requested nothing",
                |c| c.effects.clear(),
                Status::Ineffective,
                "requested no effect",
            ),
            (
                "one of two effects unverified",
                |c| {
                    let mut e = effect(Kind::Partition, 0);
                    e.verified = false;
                    e.evidence = "link 2->0: nothing held".into();
                    c.effects.push(e);
                },
                Status::Ineffective,
                "did not take hold: partition on node 0 (d): link 2->0: nothing held",
            ),
            (
                "one plugin of a composed class requested nothing",
                |c| {
                    c.faults = vec!["a@1".into(), "b@1".into()];
                    c.effects[0].plugin = Some("a@1".into());
                },
                Status::Ineffective,
                "b@1 requested no effect",
            ),
            (
                "every plugin of a composed class had its effect",
                |c| {
                    c.faults = vec!["a@1".into(), "b@1".into()];
                    c.effects[0].plugin = Some("a@1".into());
                    let mut e = effect(Kind::Partition, 0);
                    e.plugin = Some("b@1".into());
                    c.effects.push(e);
                },
                Status::Pass,
                "",
            ),
            (
                "an effect after the burst",
                |c| c.effects[0].during_burst = false,
                Status::Ineffective,
                "after the burst ended",
            ),
            (
                "a simulated effect",
                |c| {
                    c.effects[0].simulated = true;
                    c.effects[0].verified = false;
                },
                Status::Simulated,
                "simulated, not applied",
            ),
            (
                "assertion failed",
                |c| c.verdicts.push(verdict("fail")),
                Status::Fail,
                "convergence@0.1.0: because",
            ),
            (
                "assertion unknown",
                |c| c.verdicts.push(verdict("unknown")),
                Status::Unknown,
                "because",
            ),
            (
                "probe failed",
                |c| c.probes.push("quorum probe: expected 503".into()),
                Status::Fail,
                "expected 503",
            ),
            (
                "no node alive",
                |c| {
                    c.effects = vec![
                        effect(Kind::Signal, 0),
                        effect(Kind::Signal, 1),
                        effect(Kind::Signal, 2),
                    ];
                    for n in &mut c.nodes {
                        n.exit = Some("killed by SIGKILL".into());
                    }
                },
                Status::Unknown,
                "cannot be checked",
            ),
            (
                "loss outranks an ineffective fault",
                |c| {
                    lose_one(c);
                    c.effects[0].verified = false;
                },
                Status::Fail,
                "did not take hold",
            ),
            (
                "a plugin error outranks loss",
                |c| {
                    lose_one(c);
                    c.plugin_errors.push("figure out of range".into());
                },
                Status::Error,
                "1 of 200",
            ),
        ];
        for (what, edit, status, reason) in table {
            let mut c = passing();
            edit(&mut c);
            let j = judged(&c);
            assert_eq!(j.status, *status, "{what}: {:?}", j.reasons);
            assert!(
                reason.is_empty() || j.reasons.iter().any(|r| r.contains(reason)),
                "{what}: reasons {:?} lack {reason:?}",
                j.reasons
            );
            if *status == Status::Pass && reason.is_empty() {
                assert!(j.reasons.is_empty(), "{what}: {:?}", j.reasons);
            }
        }
    }

    /// Every node killed on purpose: what cannot be checked is `unknown`,
    /// not a system that failed to recover.
    #[test]
    fn no_node_alive_is_never_unrecovered() {
        let mut c = passing();
        c.effects = (0..3).map(|i| effect(Kind::Signal, i)).collect();
        for n in &mut c.nodes {
            n.exit = Some("killed by SIGKILL".into());
        }
        let r = c.recovery.as_mut().unwrap();
        r.acked = 0;
        r.skipped = Some("every node is down: none can take writes".into());
        let j = judged(&c);
        assert_eq!(j.status, Status::Unknown, "{:?}", j.reasons);
        assert!(
            !j.reasons.iter().any(|r| r.contains("not recovered")),
            "{:?}",
            j.reasons
        );
    }

    #[test]
    fn tolerated_losses_are_counted() {
        let mut c = passing();
        lose_one(&mut c);
        c.tolerate = Some(0.01);
        assert_eq!(judged(&c).tolerated_lost, 1);
        c.tolerate = None;
        assert_eq!(judged(&c).tolerated_lost, 0);
    }

    #[test]
    fn severity_orders_every_status() {
        let order = [
            Status::Pass,
            Status::Unknown,
            Status::Ineffective,
            Status::Simulated,
            Status::Vacuous,
            Status::Fail,
            Status::Error,
        ];
        for w in order.windows(2) {
            assert!(severity(w[0]) < severity(w[1]), "{w:?}");
        }
    }
}
