//! The quorum probes, as a cycle step after the
//! observation (`[probes] quorum = true`):
//!
//! 1. kill one peer of the primary; a write through the primary must be
//!    acknowledged (W of N still reachable);
//! 2. kill every other peer; a write must be refused with the campaign's
//!    quorum-not-met status;
//! 3. read the primary back: a refused probe write it holds anyway is
//!    reported by id (the client was told "not committed").
//!
//! Probe writes use ids `{namespace}-p1` and `-p2`, outside the burst's
//! `-w<n>` range, and run after the cycle's figures are taken, so they never
//! change them. Killed peers are reaped like any node at teardown.

use crate::workload::Outcome;
use chaos_lifecycle::Node;
use chaos_model::campaign::Campaign;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One probe write.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeWrite {
    pub id: String,
    /// Peers down (killed) when it was sent.
    pub peers_down: Vec<u32>,
    pub expected: Outcome,
    pub outcome: Outcome,
    pub pass: bool,
}

/// What the quorum probes found in one cycle.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QuorumProbes {
    /// Why the probes did not run (the primary or a peer was down already).
    pub skipped: Option<String>,
    pub one_peer_down: Option<ProbeWrite>,
    pub all_peers_down: Option<ProbeWrite>,
    /// Probe writes refused (or failed) that the primary holds anyway.
    pub refused_but_present: Vec<String>,
}

impl QuorumProbes {
    fn skipped(why: String) -> Self {
        Self {
            skipped: Some(why),
            one_peer_down: None,
            all_peers_down: None,
            refused_but_present: Vec::new(),
        }
    }

    /// Reasons this cycle fails on the probes (a skipped probe fails nothing).
    pub fn failures(&self) -> Vec<String> {
        [&self.one_peer_down, &self.all_peers_down]
            .into_iter()
            .flatten()
            .filter(|p| !p.pass)
            .map(|p| {
                format!(
                    "quorum probe: with peer(s) {:?} down, write {} was {:?}, expected {:?}",
                    p.peers_down, p.id, p.outcome, p.expected
                )
            })
            .collect()
    }
}

/// Run the probes against a cluster whose figures are already taken.
pub async fn quorum(
    campaign: &Campaign,
    client: &crate::client::Client,
    nodes: &[Arc<Node>],
    namespace: &str,
    process: u32,
) -> anyhow::Result<QuorumProbes> {
    let primary = &nodes[campaign.file.system.primary as usize];
    if !primary.alive() {
        return Ok(QuorumProbes::skipped(format!(
            "the primary (node {}) is down after the fault",
            primary.index
        )));
    }
    let peers: Vec<&Arc<Node>> = nodes.iter().filter(|n| n.index != primary.index).collect();
    if let Some(dead) = peers.iter().find(|n| !n.alive()) {
        return Ok(QuorumProbes::skipped(format!(
            "peer node {} is down after the fault",
            dead.index
        )));
    }
    let mut down = Vec::new();
    let mut send = async |id: String, kill: &[&Arc<Node>], expected: Outcome| {
        for n in kill {
            n.kill_and_reap().await;
            down.push(n.index);
        }
        let outcome = client
            .add(process, primary.index, primary.client, &id)
            .await
            .outcome;
        ProbeWrite {
            id,
            peers_down: down.clone(),
            expected,
            pass: outcome == expected,
            outcome,
        }
    };
    let one = send(format!("{namespace}-p1"), &peers[..1], Outcome::Ok).await;
    let all = send(
        format!("{namespace}-p2"),
        &peers[1..],
        Outcome::QuorumNotMet,
    )
    .await;
    let held = client.read(process, primary.index, primary.client).await?;
    let refused_but_present = [&one, &all]
        .into_iter()
        // Only a definite refusal: a write of unknown fate may land.
        .filter(|p| matches!(p.outcome, Outcome::QuorumNotMet | Outcome::Fail))
        .filter(|p| held.contains(&p.id))
        .map(|p| p.id.clone())
        .collect();
    Ok(QuorumProbes {
        skipped: None,
        one_peer_down: Some(one),
        all_peers_down: Some(all),
        refused_but_present,
    })
}
