//! Partitions: a grudge put in force over the campaign's network for a
//! lease.
//!
//! Verified only when every cut directed link proves itself: right after
//! the cut the host probes each link (a connection its proxy must hold, or a
//! SYN its nftables rule must drop), and when the lease ends each link's own
//! counter must show something blocked. A total over all links is not
//! enough: an idle or uncut link would hide behind a busy one. In proxy mode
//! the host also looks for node processes connected to each other directly
//! (past the proxies, as a system that learns peer addresses by gossip
//! does), at the cut and at the heal: such a partition cuts nothing and is
//! never verified.

use super::{EffectRecord, Effects};
use crate::kind::Kind;
use crate::lease::Lease;
use chaos_mechanisms::net::bypass::{self, NodeSockets};
use chaos_mechanisms::net::{Grudge, Mode};
use std::sync::Arc;
use std::time::Instant;

impl Effects {
    pub async fn partition(self: &Arc<Self>, grudge: Grudge, ms: u32) -> Result<(), String> {
        chaos_model::bounds::lease("partition", ms)?;
        self.check_grudge(Kind::Partition, &grudge)?;
        // A new partition replaces the one in force (this plugin's only).
        // Held until the new lease is recorded.
        let claim = self.replace_own(Kind::Partition).await?;
        let during_burst = self.burst_running();
        let first = grudge.iter().position(|r| !r.is_empty()).unwrap_or(0) as u32;
        let installed = self.net.partition(&grudge).await;
        let start_us = self.now_us();
        let (generation, evidence) = match installed {
            Ok(g) => g,
            Err(e) => {
                // Lift whatever part of it may be in force.
                self.net.heal(None).await;
                return Err(e);
            }
        };
        // Recorded before probing, unverified until the probe and the
        // heal show every link cut, so a cancelled call is still undone.
        let slot = self.open(
            EffectRecord::lease(
                Kind::Partition,
                first,
                format!(
                    "grudge {} for {ms} ms ({})",
                    serde_json::to_string(&grudge).unwrap_or_default(),
                    self.net.mode().as_str()
                ),
                Some(ms as u64),
                start_us,
                during_burst,
                evidence,
            ),
            Lease::Partition { generation },
        );
        // Recorded: from here on another plugin is refused naming it.
        drop(claim);
        let probing = Instant::now();
        let probes = self.net.probe(generation, &grudge).await;
        let took = probing.elapsed();
        let scanning = Instant::now();
        let bypasses = self.bypasses().await;
        let scan = self.scan_note(scanning);
        let unheld: Vec<String> = probes
            .iter()
            .filter(|p| !p.held)
            .map(|p| format!("{}->{}", p.from, p.to))
            .collect();
        let mut seen = format!(
            "; probe of {} link(s) in {} µs: {}",
            probes.len(),
            took.as_micros(),
            probes
                .iter()
                .map(|p| format!("{}->{} {}", p.from, p.to, p.detail))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !unheld.is_empty() {
            seen.push_str(&format!("; link(s) {} not shown cut", unheld.join(", ")));
        }
        for b in bypass::summary(&bypasses) {
            seen.push_str(&format!("; at the cut, {b}"));
        }
        seen.push_str(&scan);
        // No probe ran when a later partition already replaced this one.
        let verified = !probes.is_empty() && unheld.is_empty() && bypasses.is_empty();
        self.update(slot, |r| {
            // A lease already ended was judged unverified at its heal.
            r.verified = verified && r.end_us.is_none();
            r.evidence.push_str(&seen);
        });
        // Timed from `start_us`: the probe does not lengthen the lease.
        self.schedule_end(slot, start_us, ms);
        Ok(())
    }

    /// The reason `grudge` names no link of this campaign, if it does not
    /// (`what` is the host function asked).
    pub(super) fn check_grudge(&self, what: Kind, grudge: &Grudge) -> Result<(), String> {
        if grudge.len() > self.nodes.len() {
            return Err(format!(
                "{what}: the grudge has {} rows but this campaign has {} nodes",
                grudge.len(),
                self.nodes.len()
            ));
        }
        for (i, row) in grudge.iter().enumerate() {
            for &j in row {
                self.node(j)?;
                if j as usize == i {
                    return Err(format!(
                        "{what}: node {i} cannot hold a grudge against itself"
                    ));
                }
            }
        }
        if grudge.iter().all(Vec::is_empty) {
            return Err(format!("{what}: the grudge names no link"));
        }
        Ok(())
    }

    /// After a partition lease's heal (and after its `undone_us`, so the
    /// scan never counts as time the cut held): look again for nodes
    /// connected past the proxies, e.g. dialled directly while the cut held.
    pub(super) async fn bypass_after_heal(&self, slot: usize) {
        if self.net.mode() != Mode::Proxy {
            return;
        }
        let scanning = Instant::now();
        let found = self.bypasses().await;
        let mut text = String::new();
        for b in bypass::summary(&found) {
            text.push_str(&format!("; at the heal, {b}"));
        }
        text.push_str(&self.scan_note(scanning));
        self.update(slot, |r| {
            r.verified &= found.is_empty();
            r.evidence.push_str(&text);
        });
    }

    /// How long the bypass scan begun at `since` took, for the evidence
    /// (nothing outside proxy mode, where there is no scan).
    fn scan_note(&self, since: Instant) -> String {
        if self.net.mode() != Mode::Proxy {
            return String::new();
        }
        format!("; bypass scan {} µs", since.elapsed().as_micros())
    }

    /// Direct connections between node processes, past the proxies
    /// (proxy mode only: elsewhere nothing routes around the cut).
    async fn bypasses(&self) -> Vec<bypass::Bypass> {
        if self.net.mode() != Mode::Proxy {
            return vec![];
        }
        let nodes: Vec<NodeSockets> = self
            .nodes
            .iter()
            .zip(&self.net.addrs)
            .map(|(n, a)| NodeSockets {
                index: n.index as usize,
                pgid: n.pid().as_raw(),
                ports: [a.listen_port, a.peer_port]
                    .into_iter()
                    .filter(|&p| p != 0)
                    .collect(),
            })
            .collect();
        // A few ms of /proc reading (the kernel walks its whole TCP hash
        // table for each of tcp and tcp6): off the runtime's threads.
        tokio::task::spawn_blocking(move || bypass::scan(&nodes))
            .await
            .unwrap_or_default()
    }
}
