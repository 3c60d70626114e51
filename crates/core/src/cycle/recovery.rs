//! The recovery window: after the heal, the system must acknowledge writes
//! again. A system that stays unavailable once the fault is gone (zero
//! acknowledged after the nemesis) has broken its promise even when it lost
//! nothing; the burst alone cannot see it, since the burst may end before
//! the fault does.
//!
//! `[recovery] writes` fresh writes, one at a time, through the nodes
//! `[recovery] through` allows: the primary (the default, the way the burst
//! writes), the primary while it lives else every live node in turn
//! (`"any"`), or listed nodes in turn; a refused or failed write is retried
//! with a new id until `writes` are acknowledged or `deadline_ms` passes. A
//! silent primary is also a liveness finding of the read-back.
//!
//! When none of those nodes is alive (a killed primary does not come back),
//! the check is skipped with the reason in the record: writes through a
//! node the system never meant to take them (a star's leaf, which has no
//! one to replicate to) would be demanded where they cannot be.

use crate::workload::{Outcome, WriteResult};
use chaos_lifecycle::Node;
use chaos_model::campaign::{Campaign, Through};

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pause between a refused recovery write and the next try: the system gets
/// a moment, and a down system is not flooded.
const RETRY: Duration = Duration::from_millis(20);

/// The window's clocks: the burst's start (origin of write offsets) and the
/// heal (origin of the window).
pub struct At<'a> {
    pub started: Instant,
    pub healed: Instant,
    /// Where each write is recorded, as `process`.
    pub history: &'a chaos_model::history::Recorder,
    pub process: u32,
}

pub use crate::metrics::RecoveryRecord;

/// Run the window from `healed`. The record keeps every write made
/// (`writes_detail`), whose acknowledged ids join the cycle's durability
/// check. Ids are
/// numbered from `first_id`, after the burst's; `started` is the burst's
/// start, the origin of write offsets.
pub async fn recover(
    campaign: &Campaign,
    client: &crate::client::Client,
    nodes: &[Arc<Node>],
    namespace: &str,
    first_id: u32,
    at: At<'_>,
) -> RecoveryRecord {
    let At {
        started,
        healed,
        history,
        process,
    } = at;
    let primary = campaign.file.system.primary;
    let wanted = campaign.file.recovery.writes;
    let deadline = Duration::from_millis(campaign.file.recovery.deadline_ms);
    let per_try = (deadline / 4).max(Duration::from_millis(100));
    let until = healed + deadline;
    let mut record = RecoveryRecord {
        wanted,
        acked: 0,
        tried: 0,
        deadline_ms: deadline.as_millis() as u64,
        first_ack_ms: None,
        recovered_ms: None,
        last_ack_ms: None,
        last_refusal: None,
        skipped: None,
        lost: Vec::new(),
        writes_detail: Vec::new(),
    };
    let mut turn = 0usize;
    while record.acked < wanted {
        let now = Instant::now();
        if now >= until {
            break;
        }
        // Asked again before each try: a node that dies in the window
        // (a finding of its own) ends it.
        let node = match pick(&campaign.file.recovery.through, primary, nodes, turn) {
            Ok(node) => node,
            Err(why) => {
                record.skipped = Some(why);
                break;
            }
        };
        // Numbered after the burst's, in the documented id format
        // `{namespace}-w<n>` campaigns' read-backs select on.
        let id = format!("{namespace}-w{}", first_id + record.tried);
        record.tried += 1;
        let issued = Instant::now();
        // A write may not outlive the window, nor take all of it: a write
        // stuck in an election must leave time for the next try.
        let answer = tokio::time::timeout(
            until.saturating_duration_since(issued).min(per_try),
            client.add(process, node.index, node.client, &id),
        )
        .await;
        let (outcome, status) = match &answer {
            Ok(a) => (a.outcome, a.status),
            Err(_) => (Outcome::Indeterminate, None),
        };
        let result = WriteResult {
            id,
            outcome,
            status,
            start_us: issued.duration_since(started).as_micros() as u64,
            latency_us: issued.elapsed().as_micros() as u64,
        };
        history.push(chaos_model::history::write_op(
            process,
            node.index,
            &result.id,
            outcome,
            status,
            result.start_us,
            result.latency_us,
        ));
        record.writes_detail.push(result);
        if outcome == Outcome::Ok {
            record.acked += 1;
            let ms = healed.elapsed().as_millis() as u64;
            record.first_ack_ms.get_or_insert(ms);
            record.last_ack_ms = Some(ms);
            if record.acked == wanted {
                record.recovered_ms = Some(ms);
            }
            continue;
        }
        record.last_refusal = Some(match status {
            Some(s) => format!("node {}: {s} ({})", node.index, outcome.as_str()),
            None => format!("node {}: no answer ({})", node.index, outcome.as_str()),
        });
        turn += 1;
        tokio::time::sleep(RETRY.min(until.saturating_duration_since(Instant::now()))).await;
    }
    record
}

/// The node the next try goes through (`turn`: refusals so far), or why no
/// node may take it. A primary that refuses is the system refusing: it is
/// tried again, not passed over.
fn pick<'n>(
    through: &Through,
    primary: u32,
    nodes: &'n [Arc<Node>],
    turn: usize,
) -> Result<&'n Arc<Node>, String> {
    pick_by(through, primary, nodes, turn, |n| n.alive()).map(|i| &nodes[i])
}

/// [`pick`] over any nodes, `alive` telling which live: the index chosen.
fn pick_by<N>(
    through: &Through,
    primary: u32,
    nodes: &[N],
    turn: usize,
    alive: impl Fn(&N) -> bool,
) -> Result<usize, String> {
    let live = |i: &usize| nodes.get(*i).is_some_and(&alive);
    let in_turn = |eligible: Vec<usize>| {
        let n = eligible.len();
        (n > 0).then(|| eligible[turn % n])
    };
    let chosen = match through {
        Through::Primary => Some(primary as usize).filter(live),
        Through::Any => Some(primary as usize)
            .filter(live)
            .or_else(|| in_turn((0..nodes.len()).filter(live).collect())),
        Through::Nodes(list) => in_turn(list.iter().map(|&i| i as usize).filter(live).collect()),
    };
    if let Some(i) = chosen {
        return Ok(i);
    }
    Err(if !(0..nodes.len()).any(|i| live(&i)) {
        "every node is down: none can take writes".to_string()
    } else {
        match through {
            Through::Primary => format!(
                "the primary (node {primary}) is down and [recovery] through = \"primary\"; no node that may take writes is alive"
            ),
            // Unreachable while a node lives: "any" takes any live node.
            Through::Any => "no live node takes writes".to_string(),
            Through::Nodes(list) => format!(
                "nodes {} ([recovery] through) are down; no node that may take writes is alive",
                list.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Node 0 dead, 1 and 2 alive (the star after its hub was killed).
    const HUB_DEAD: [bool; 3] = [false, true, true];

    fn pick(through: &Through, alive: [bool; 3], turn: usize) -> Result<usize, String> {
        pick_by(through, 0, &alive, turn, |a| *a)
    }

    #[test]
    fn primary_only_while_it_lives() {
        assert_eq!(pick(&Through::Primary, [true; 3], 3), Ok(0));
        assert_eq!(
            pick(&Through::Primary, HUB_DEAD, 0),
            Err("the primary (node 0) is down and [recovery] through = \"primary\"; no node that may take writes is alive".into())
        );
    }

    #[test]
    fn any_falls_back_to_the_live_nodes_in_turn() {
        assert_eq!(pick(&Through::Any, [true; 3], 1), Ok(0));
        assert_eq!(pick(&Through::Any, HUB_DEAD, 0), Ok(1));
        assert_eq!(pick(&Through::Any, HUB_DEAD, 1), Ok(2));
    }

    #[test]
    fn listed_nodes_in_turn_the_live_ones() {
        let t = Through::Nodes(vec![0, 2]);
        assert_eq!(pick(&t, [true; 3], 1), Ok(2));
        assert_eq!(pick(&t, HUB_DEAD, 0), Ok(2));
        assert_eq!(pick(&t, HUB_DEAD, 1), Ok(2));
        let down = pick(&Through::Nodes(vec![0]), HUB_DEAD, 0).unwrap_err();
        assert!(
            down.contains("nodes 0 ([recovery] through) are down"),
            "{down}"
        );
    }

    #[test]
    fn every_node_down_is_said_whatever_through() {
        for t in [Through::Primary, Through::Any, Through::Nodes(vec![1])] {
            assert_eq!(
                pick(&t, [false; 3], 0),
                Err("every node is down: none can take writes".into())
            );
        }
    }
}
