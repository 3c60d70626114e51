//! A lease as the host holds it: what undoing it needs ([`Lease`], one
//! variant per effect file that has something to undo). A new effect is one
//! new file, one [`crate::kind::Kind`] and one variant here; the bookkeeping
//! in the crate root (records, timers, claims, the journal) never matches
//! on kinds. Below the effect files: they name what they hold, this undoes
//! it.

use crate::{Effects, KillUnderWay};
use chaos_lifecycle::Node;
use chaos_mechanisms::clock::{apply_to_group, set_offset, vdso};
use chaos_mechanisms::disk::Counts;
use chaos_model::contract::DiskFault;
use nix::sys::signal::Signal;
use std::path::PathBuf;
use std::sync::Arc;

/// What the host needs to undo one open lease.
pub(crate) enum Lease {
    /// A stopped node, with the journal entry of its SIGSTOP.
    Pause { journal: u64 },
    /// A cut: the network's generation of it, so ending it never lifts a
    /// later one; and in proxy mode the scans for bypasses.
    Partition {
        generation: u64,
        watch: Option<crate::bypass_watch::BypassWatch>,
    },
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
            Lease::Pause { .. } => (resume(&fx.nodes[node as usize]), None),
            Lease::Partition { generation, watch } => {
                // Stopped first: the heal's own scan follows the heal. The
                // join waits out a poll in progress: off the runtime.
                let watched = match watch {
                    Some(w) => tokio::task::spawn_blocking(move || w.stop())
                        .await
                        .ok()
                        .or(Some(("bypass watch could not be joined".into(), false))),
                    None => None,
                };
                let held_ms = fx.records().get(slot).map_or(0, |r| {
                    r.end_us
                        .unwrap_or_else(|| fx.now_us())
                        .saturating_sub(r.start_us)
                        / 1000
                });
                let (mut v, mut evidence) = fx.net.heal(Some(generation)).await.verdict(held_ms);
                if let Some((text, clean)) = watched {
                    evidence.push_str("; ");
                    evidence.push_str(&text);
                    v &= clean;
                }
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
                resume(&fx.nodes[node as usize]);
            }
            Lease::Clock(held) => held.reset_now(),
            Lease::Partition { watch, .. } => {
                if let Some(w) = watch {
                    w.stop();
                }
                fx.net.heal_now()
            }
            Lease::Link { .. } => fx.net.unlink_now(),
            Lease::Disk { fault, before } => fx.end_disk_now(node, fault, before),
            // A node killed for a restart stays down with its cycle.
            Lease::Restart { .. } => {}
        }
    }
}

/// What undoing a clock lease needs: the node's libfaketime file (the
/// fallback), or the process group whose vDSO was patched and the watch
/// patching its new processes, or the lease held on a remote host; and a
/// drift's rate (ppm) and start, measured at the end.
#[derive(Default)]
pub(crate) struct ClockHeld {
    pub file: Option<PathBuf>,
    pub group: Option<i32>,
    pub watch: Option<ClockWatch>,
    pub drift: Option<(i64, tokio::time::Instant)>,
    pub remote: Option<chaos_mechanisms::clock::remote::ClockLease>,
}

/// The task patching processes that appear in a skewed group.
pub(crate) struct ClockWatch {
    pub task: tokio::task::AbortHandle,
    /// Processes it patched during the lease.
    pub late: Arc<std::sync::atomic::AtomicUsize>,
    /// Set, under its lock, by the reset: a patch of the watch's already
    /// running on a blocking thread when the lease ends (aborting the task
    /// does not stop it) finishes before the reset, or does nothing, so it
    /// never puts the skew back after the clock was reset.
    pub stopped: Arc<std::sync::Mutex<bool>>,
}

impl ClockWatch {
    /// Stop it and, holding its lock, run `reset`.
    pub(crate) fn stop_then<T>(
        stopped: Option<&Arc<std::sync::Mutex<bool>>>,
        reset: impl FnOnce() -> T,
    ) -> T {
        let _held = stopped.map(|s| {
            let mut g = s.lock().unwrap_or_else(|e| e.into_inner());
            *g = true;
            g
        });
        reset()
    }
}

impl ClockHeld {
    /// Put the clock back without waiting (a cycle dropped mid-way).
    pub fn reset_now(self) {
        if let Some(f) = &self.file {
            let _ = set_offset(f, 0);
        }
        if let Some(w) = &self.watch {
            w.task.abort();
        }
        if let Some(pgid) = self.group {
            ClockWatch::stop_then(self.watch.as_ref().map(|w| &w.stopped), || {
                apply_to_group(pgid, vdso::Skew::default())
            });
        }
        if let Some(lease) = self.remote {
            // Its stdin closes: the helper resets there.
            let _ = lease.end();
        }
    }
}

/// SIGCONT the node and report its state afterwards.
pub(crate) fn resume(node: &Node) -> String {
    match node.signal(Signal::SIGCONT) {
        Ok(()) => format!(
            "SIGCONT; state {} after",
            node.state().map_or("gone".to_string(), |c| c.to_string())
        ),
        Err(e) => format!("SIGCONT failed: {e}"),
    }
}
