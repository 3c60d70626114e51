//! Partitions: a grudge put in force over the campaign's network for a
//! lease.
//!
//! Verified only when every cut directed link proves itself: right after
//! the cut the host probes each link (a connection its proxy must hold, or a
//! SYN its nftables rule must drop), and when the lease ends each link's own
//! counter must show something blocked. A total over all links is not
//! enough: an idle or uncut link would hide behind a busy one. And the
//! system's own traffic, the probe apart, must have met the cut on some
//! link: a cut the system never tried to cross tested nothing. In proxy
//! mode the host also looks for node processes connected to each other
//! directly (past the proxies, as a system that learns peer addresses by
//! gossip does), at the cut, again and again for the whole lease
//! ([`crate::bypass_watch`]: a connection opened per request lives a few ms), and
//! at the heal: such a partition cuts nothing and is never verified.

use super::{EffectRecord, Effects};
use crate::bypass_watch::{BypassWatch, Watched};
use crate::kind::Kind;
use crate::lease::Lease;
use chaos_lifecycle::Node;
use chaos_mechanisms::net::bypass::{self, NodeSockets};
use chaos_mechanisms::net::{Grudge, Mode, NodeAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The pause between two polls of the nodes' sockets during a lease.
pub const RESCAN_EVERY: Duration = Duration::from_millis(2);

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
            Lease::Partition {
                generation,
                watch: None,
            },
        );
        // Recorded: from here on another plugin is refused naming it.
        drop(claim);
        // Watched from the first moment: its first poll reads the whole
        // table (every socket is new to it), which is the scan at the cut,
        // and a burst's writes may all fall in the lease's first ms.
        if self.net.mode() == Mode::Proxy {
            self.watch_bypasses(slot, start_us);
        }
        let probing = Instant::now();
        let probes = self.net.probe(generation, &grudge).await;
        let took = probing.elapsed();
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
        // No probe ran when a later partition already replaced this one.
        let verified = !probes.is_empty() && unheld.is_empty();
        self.update(slot, |r| {
            // A lease already ended was judged unverified at its heal.
            r.verified = verified && r.end_us.is_none();
            r.evidence.push_str(&seen);
        });
        // Timed from `start_us`: the probe does not lengthen the lease.
        self.schedule_end(slot, start_us, ms);
        Ok(())
    }

    /// Watch for bypasses until the lease of `slot` ends, polling the
    /// nodes' sockets every [`RESCAN_EVERY`] on a thread of its own
    /// (`bypass::Watcher`: the TCP table is read only on a new socket).
    fn watch_bypasses(self: &Arc<Self>, slot: usize, start_us: u64) {
        let stop = Arc::new(AtomicBool::new(false));
        let halt = stop.clone();
        // Clones of the nodes (read afresh each poll: a restarted node has
        // a new group), not of the effects: the watch never keeps its
        // cycle alive, and is joined at the lease's end.
        let nodes = self.nodes.clone();
        let addrs = self.net.addrs.clone();
        let epoch = self.started();
        let thread = std::thread::Builder::new()
            .name("bypass-watch".into())
            .spawn(move || {
                let mut watcher = bypass::Watcher::default();
                let mut w = Watched::default();
                while !halt.load(Ordering::Relaxed) {
                    let polling = Instant::now();
                    let found = watcher.poll(&node_sockets(&nodes, &addrs));
                    let took = polling.elapsed().as_micros() as u64;
                    w.busy_us += took;
                    w.max_us = w.max_us.max(took);
                    let at_ms =
                        (epoch.elapsed().as_micros() as u64).saturating_sub(start_us) / 1000;
                    for b in found {
                        let key = (b.from, b.local, b.to);
                        if !w.found.iter().any(|(o, _)| (o.from, o.local, o.to) == key) {
                            w.found.push((b, at_ms));
                        }
                    }
                    std::thread::sleep(RESCAN_EVERY);
                }
                w.polls = watcher.polls;
                w.asked = watcher.asked;
                w.reads = watcher.reads;
                w
            });
        let thread = match thread {
            Ok(t) => t,
            Err(e) => {
                // Unwatched: never verified on the rest alone.
                self.update(slot, |r| {
                    r.verified = false;
                    r.evidence
                        .push_str(&format!("; bypass watch could not start: {e}"));
                });
                return;
            }
        };
        let mut kept = Some(BypassWatch {
            stop,
            thread: Some(thread),
        });
        self.remember(slot, |lease| {
            if let Lease::Partition { watch: w, .. } = lease {
                *w = kept.take();
            }
        });
        // The lease already ended: nothing is left to watch.
        if let Some(w) = kept {
            w.stop();
        }
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
        let nodes = self.node_sockets();
        // A few ms of /proc reading (the kernel walks its whole TCP hash
        // table for each of tcp and tcp6): off the runtime's threads.
        tokio::task::spawn_blocking(move || bypass::scan(&nodes))
            .await
            .unwrap_or_default()
    }
    fn node_sockets(&self) -> Vec<NodeSockets> {
        node_sockets(&self.nodes, &self.net.addrs)
    }
}

/// Each node's process group and ports, as the bypass scan needs them
/// (read afresh: a restarted node has a new group).
fn node_sockets(nodes: &[Arc<Node>], addrs: &[NodeAddr]) -> Vec<NodeSockets> {
    nodes
        .iter()
        .zip(addrs)
        .map(|(n, a)| NodeSockets {
            index: n.index as usize,
            pgid: n.pid().as_raw(),
            ports: [a.listen_port, a.peer_port]
                .into_iter()
                .filter(|&p| p != 0)
                .collect(),
        })
        .collect()
}
