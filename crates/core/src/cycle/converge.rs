//! Converge, don't sleep: after the heal, read every live node back until
//! each holds every acknowledged id or the deadline (`settle_ms`) passes.
//! An id that shows up after the first read-back is `late`, with its delay;
//! one still missing at the deadline is lost. A healthy system is done at
//! the first read, so its cycles no longer wait out a blind settle.

use crate::client::ReadError;
use crate::metrics::Late;
use crate::workload;
use chaos_lifecycle::Node;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pause between read-back rounds of nodes still missing ids.
const POLL: Duration = Duration::from_millis(20);

/// One node at the end of the convergence window.
#[derive(Clone, Debug, Default)]
pub struct NodeView {
    /// The ids of its last answered read-back; none when it is dead or
    /// never answered.
    pub held: Option<Vec<String>>,
    /// Why its last read-back gave nothing (it is alive but silent).
    pub read_error: Option<String>,
    /// ms from the heal until it held every acknowledged id.
    pub converged_ms: Option<u64>,
    pub late: Vec<Late>,
    /// Acknowledged ids missing at its first answered read-back.
    missing_first: Option<HashSet<String>>,
}

/// Where to read and what must be there.
pub struct Want<'a> {
    pub client: &'a crate::client::Client,
    pub acked: &'a HashSet<&'a str>,
    /// Every id the cycle wrote: anything else on a node is a harness error.
    pub issued: &'a HashSet<&'a str>,
    /// When the fault was healed: the origin of the deadline and of every
    /// node's `converged_ms`.
    pub healed: Instant,
    pub deadline: Duration,
    /// Where each read-back is recorded (a `read`, process per node).
    pub history: &'a chaos_model::history::Recorder,
    pub processes: chaos_model::history::Processes,
}

/// Read the nodes back until they hold every acknowledged id or the
/// deadline passes. Harness errors (an answer the campaign cannot parse, an
/// id the cycle never wrote) end the step; a silent node does not.
pub async fn converge(nodes: &[Arc<Node>], want: &Want<'_>) -> anyhow::Result<Vec<NodeView>> {
    let t0 = want.healed;
    let mut views = vec![NodeView::default(); nodes.len()];
    let mut done = vec![false; nodes.len()];
    loop {
        let pending: Vec<usize> = (0..nodes.len())
            .filter(|&i| !done[i] && nodes[i].alive())
            .collect();
        if pending.is_empty() {
            break;
        }
        let reads = futures::future::join_all(pending.iter().map(|&i| {
            let n = &nodes[i];
            let process = want.processes.read_back(n.index);
            workload::read_recorded(want.client, n.index, n.client, (want.history, process))
        }))
        .await;
        let now_ms = t0.elapsed().as_millis() as u64;
        for (&i, read) in pending.iter().zip(reads) {
            let view = &mut views[i];
            match read {
                Ok(ids) => {
                    let foreign = workload::foreign(&ids, want.issued);
                    if !foreign.is_empty() {
                        anyhow::bail!(
                            "harness error: node {} returned {} id(s) this cycle never wrote (e.g. {:?}): cycles are not isolated; check that read.url filters by {{namespace}}",
                            nodes[i].index,
                            foreign.len(),
                            &foreign[..foreign.len().min(3)]
                        );
                    }
                    done[i] = view.saw(ids, want.acked, now_ms);
                }
                Err(ReadError::Garbage(e)) => anyhow::bail!("harness error: {e}"),
                Err(ReadError::Unanswered(e)) => view.read_error = Some(e),
            }
        }
        let left = want.deadline.saturating_sub(t0.elapsed());
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(POLL.min(left)).await;
    }
    for (view, node) in views.iter_mut().zip(nodes) {
        if !node.alive() {
            // Dead by now: what it held no longer counts (a death is
            // judged on its own).
            *view = NodeView::default();
        }
    }
    Ok(views)
}

impl NodeView {
    /// Take one answered read-back at `now_ms`; true once every
    /// acknowledged id is held.
    fn saw(&mut self, ids: Vec<String>, acked: &HashSet<&str>, now_ms: u64) -> bool {
        self.read_error = None;
        let set: HashSet<&str> = ids.iter().map(String::as_str).collect();
        match &mut self.missing_first {
            None => {
                self.missing_first = Some(
                    acked
                        .iter()
                        .filter(|id| !set.contains(*id))
                        .map(|id| id.to_string())
                        .collect(),
                );
            }
            Some(missing) => {
                let arrived: Vec<String> = missing
                    .iter()
                    .filter(|id| set.contains(id.as_str()))
                    .cloned()
                    .collect();
                for id in arrived {
                    missing.remove(&id);
                    self.late.push(Late {
                        id,
                        after_ms: now_ms,
                    });
                }
            }
        }
        let complete = acked.iter().all(|id| set.contains(id));
        if complete {
            self.converged_ms = Some(now_ms);
            self.late
                .sort_by(|a, b| (a.after_ms, &a.id).cmp(&(b.after_ms, &b.id)));
        }
        self.held = Some(ids);
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn late_ids_are_timed_and_missing_ones_stay_missing() {
        let acked: HashSet<&str> = ["a", "b", "c"].into();
        let mut v = NodeView::default();
        assert!(!v.saw(ids(&["a"]), &acked, 0));
        assert!(!v.saw(ids(&["a", "b"]), &acked, 40));
        assert_eq!(v.converged_ms, None);
        assert!(v.saw(ids(&["a", "b", "c"]), &acked, 90));
        assert_eq!(v.converged_ms, Some(90));
        let late: Vec<(&str, u64)> = v.late.iter().map(|l| (l.id.as_str(), l.after_ms)).collect();
        assert_eq!(late, [("b", 40), ("c", 90)]);
    }

    #[test]
    fn a_node_complete_at_once_has_nothing_late() {
        let acked: HashSet<&str> = ["a"].into();
        let mut v = NodeView {
            read_error: Some("earlier timeout".into()),
            ..NodeView::default()
        };
        assert!(v.saw(ids(&["a", "x"]), &acked, 3));
        assert!(v.late.is_empty() && v.read_error.is_none());
        assert_eq!(v.converged_ms, Some(3));
    }
}
