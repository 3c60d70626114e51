//! The recovery window: after the heal, the system must acknowledge writes
//! again. A system that stays unavailable once the fault is gone (zero
//! acknowledged after the nemesis) has broken its promise even when it lost
//! nothing; the burst alone cannot see it, since the burst may end before
//! the fault does.
//!
//! `[recovery] writes` fresh writes, one at a time, through the primary
//! while it lives (the way the burst writes), else through the live nodes in
//! turn (a killed primary does not come back); a refused or failed write is
//! retried with a new id until `writes` are acknowledged or `deadline_ms`
//! passes. A silent primary is also a liveness finding of the read-back.

use crate::workload::{Outcome, WriteResult};
use chaos_lifecycle::Node;
use chaos_model::campaign::Campaign;

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
        lost: Vec::new(),
        writes_detail: Vec::new(),
    };
    let mut turn = 0usize;
    while record.acked < wanted {
        let now = Instant::now();
        if now >= until {
            break;
        }
        // Through the primary, as the burst writes, while it lives: a
        // primary that refuses is the system refusing. Only a primary gone
        // (killed by the fault; it does not come back) sends the window to
        // the other live nodes, in turn after each refusal.
        let live: Vec<&Arc<Node>> = nodes.iter().filter(|n| n.alive()).collect();
        let Some(node) = nodes
            .get(primary as usize)
            .filter(|n| n.alive())
            .or_else(|| live.get(turn % live.len().max(1)).copied())
        else {
            record.last_refusal = Some("no node is alive".into());
            break;
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
