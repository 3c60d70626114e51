//! A lease as the host holds it: its [`Kind`], and what undoing it needs
//! ([`Lease`], one variant per effect file). A new effect is one new file
//! and one variant here; the bookkeeping in the crate root (records,
//! timers, claims, the journal) never matches on kinds.

use crate::clock::ClockHeld;
use crate::{Effects, KillUnderWay};
use chaos_mechanisms::disk::Counts;
use chaos_model::contract::DiskFault;
use serde::Serialize;
use std::fmt;

/// The kind of an effect, as records name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A kill or a terminate ([`crate::signal`]).
    Signal,
    /// SIGSTOP for a lease ([`crate::pause`]).
    Pause,
    /// A grudge over the network ([`crate::partition`]).
    Partition,
    /// A skew or a drift of a node's clock ([`crate::clock`]).
    Clock,
    /// A kill, then a start again ([`crate::restart`]).
    Restart,
    /// A fault of a node's disk layer ([`crate::disk`]).
    Disk,
    /// Degraded links ([`crate::link`]).
    Link,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Signal => "signal",
            Kind::Pause => "pause",
            Kind::Partition => "partition",
            Kind::Clock => "clock",
            Kind::Restart => "restart",
            Kind::Disk => "disk",
            Kind::Link => "link",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the host needs to undo one open lease.
pub(crate) enum Lease {
    /// A stopped node, with the journal entry of its SIGSTOP.
    Pause { journal: u64 },
    /// A cut: the network's generation of it, so ending it never lifts a
    /// later one.
    Partition { generation: u64 },
    /// A skewed or drifting clock.
    Clock(ClockHeld),
    /// A restart: whether its kill took hold (start the node again), or the
    /// remote kill still under way that tells.
    Restart {
        killed: bool,
        kill: Option<KillUnderWay>,
    },
    /// A disk fault, with the layer's counts when it started.
    Disk { fault: DiskFault, before: Counts },
    /// Degraded links: the network's generation of them.
    Link { generation: u64 },
}

impl Lease {
    /// The journal entry to mark done once this lease is undone.
    pub fn journal_entry(&self) -> Option<u64> {
        match self {
            Lease::Pause { journal } => Some(*journal),
            _ => None,
        }
    }

    /// Undo it, waiting for what the undo needs (a lift's counters, a
    /// drift's measurement, a node started again): the evidence, and
    /// whether the lease held to its end where that can be told.
    pub async fn undo(self, fx: &Effects, slot: usize, node: u32) -> (String, Option<bool>) {
        match self {
            Lease::Pause { .. } => (crate::pause::resume(&fx.nodes[node as usize]), None),
            Lease::Partition { generation } => {
                let (v, evidence) = fx.net.heal(Some(generation)).await.verdict();
                (evidence, Some(v))
            }
            Lease::Clock(held) => fx.end_clock(held, node).await,
            Lease::Restart { mut killed, kill } => {
                if let Some(kill) = kill {
                    killed = kill.await;
                }
                if killed {
                    let (evidence, back) = fx.start_again(slot, node).await;
                    (evidence, Some(back))
                } else {
                    (
                        "not started again: the kill did not take hold".to_string(),
                        Some(false),
                    )
                }
            }
            Lease::Disk { fault, before } => {
                let (evidence, v) = fx.end_disk(node, fault, before).await;
                (evidence, Some(v))
            }
            Lease::Link { generation } => {
                let (v, evidence) = fx.net.unlink(Some(generation)).await;
                (evidence, Some(v))
            }
        }
    }

    /// Undo it without waiting (a cycle dropped mid-way): what can be put
    /// back at once is; the journal covers the rest.
    pub fn undo_now(self, fx: &Effects, node: u32) {
        match self {
            Lease::Pause { .. } => {
                crate::pause::resume(&fx.nodes[node as usize]);
            }
            Lease::Clock(held) => held.reset_now(),
            Lease::Partition { .. } => fx.net.heal_now(),
            Lease::Link { .. } => fx.net.unlink_now(),
            Lease::Disk { fault, before } => fx.end_disk_now(node, fault, before),
            // A node killed for a restart stays down with its cycle.
            Lease::Restart { .. } => {}
        }
    }
}
