//! Effects are leases the host owns.
//!
//! A plugin asks for an effect on node indexes; the host journals it, applies
//! it, verifies it took hold, records its exact start and end on the
//! monotonic clock, and undoes it when the lease ends or the cycle ends,
//! whichever comes first. Rollback never depends on plugin code. Plugins name
//! nodes of the current campaign only, never pids, addresses or rules.
//!
//! One file per mechanism: [`signal`] (kill/term), [`pause`] (SIGSTOP),
//! [`partition`] (grudges over the campaign's network), [`clock`]
//! (the vDSO redirected, [`vdso`]; libfaketime as the fallback),
//! [`restart`] (kill, then start again), [`disk`] (the FUSE layer under a
//! data dir), [`link`] (degraded links by a grudge).

mod bypass_watch;
pub mod clock;
mod disk;
mod kind;
mod lease;
mod link;
mod partition;
mod pause;
mod restart;
mod set_up;
mod signal;

pub use chaos_journal::journal::Journal;
use chaos_lifecycle::Node;
use chaos_mechanisms::net::CycleNet;
use chaos_model::burst::Progress;
pub use kind::Kind;
use lease::Lease;
pub use partition::RESCAN_EVERY;
use serde::Serialize;
pub use set_up::{SET_UP_CAP, SetUp, SetUps};
use std::collections::HashMap;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One effect as it happened, for the cycle record.
#[derive(Clone, Debug, Serialize)]
pub struct EffectRecord {
    pub kind: Kind,
    /// The node it targets (for a partition, the first node of the grudge
    /// that drops traffic).
    pub node: u32,
    /// e.g. "SIGKILL", "SIGSTOP for 500 ms", "grudge [[1,2],[0],[0]]".
    pub detail: String,
    /// Requested lease length, for effects that have one.
    pub requested_ms: Option<u64>,
    /// Offsets from the burst start on the host's monotonic clock, µs.
    pub start_us: u64,
    pub end_us: Option<u64>,
    /// When the host had finished undoing it (SIGCONT sent, cut lifted,
    /// clock reset): `undone_us - start_us` is how long it really held.
    pub undone_us: Option<u64>,
    /// The host saw the effect take hold.
    pub verified: bool,
    /// The effect could not be applied to this target and was only recorded.
    pub simulated: bool,
    /// What the host saw (process state, exit status, counters, probes).
    pub evidence: String,
    /// Applied while writes were still being issued.
    pub during_burst: bool,
    /// A promise the system broke under this effect, e.g. a restarted node
    /// that did not come back: a failed cycle, not an ineffective fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<String>,
    /// The plugin that asked for it (`name@version`): a composed class runs
    /// several on one timeline. Filled in by the host, never by a mechanism.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
}

impl EffectRecord {
    /// An effect just applied: `kind` on `node` from `start_us` (for
    /// `requested_ms`, when a lease), with what the mechanism said so far;
    /// not yet ended, undone, verified or simulated, and unattributed (the
    /// host fills in the plugin). Mechanisms override what they know.
    pub fn lease(
        kind: Kind,
        node: u32,
        detail: String,
        requested_ms: Option<u64>,
        start_us: u64,
        during_burst: bool,
        evidence: String,
    ) -> Self {
        Self {
            kind,
            node,
            detail,
            requested_ms,
            start_us,
            end_us: None,
            undone_us: None,
            verified: false,
            simulated: false,
            evidence,
            during_burst,
            finding: None,
            plugin: None,
        }
    }
}

tokio::task_local! {
    /// The plugin whose `inject` is running on this task: effects it asks
    /// for are recorded as its own. A task-local rather than a parameter of
    /// every effect call: the mechanisms never need to know who asked.
    pub static ASKED_BY: String;
}

pub use chaos_mechanisms::clock::{ClockProbe, ClockSetup};

/// The effects of one cycle.
pub struct Effects {
    nodes: Vec<Arc<Node>>,
    /// Each node's disk layer, when the class declares `disk`; else empty.
    disks: Vec<Arc<chaos_mechanisms::disk::NodeDisk>>,
    net: Arc<CycleNet>,
    journal: Arc<Journal>,
    http: reqwest::Client,
    clock: Option<ClockSetup>,
    leader: Option<Arc<chaos_model::campaign::LeaderProbe>>,
    started: Instant,
    progress: watch::Receiver<Progress>,
    records: Mutex<Vec<EffectRecord>>,
    timers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Lease ends under way (claimed, undo not finished); `revert_all`
    /// waits for 0.
    ending: watch::Sender<usize>,
    /// What undoing each open lease needs, by slot.
    leases: Mutex<HashMap<usize, Lease>>,
    /// Leases being set up (kind, node): claimed before the first await, so
    /// two concurrent requests (two plugins of a composed class) cannot
    /// both pass the one-lease-per-node check.
    claims: Mutex<std::collections::HashSet<(Kind, u32)>>,
    /// Remote kills under way, by node: a disk lease on the node ends only
    /// once its kill (and the power cut that goes with it) is done.
    kills: Mutex<HashMap<u32, KillUnderWay>>,
}

/// A claim on (kind, node) while a lease is set up; released when dropped.
pub(crate) struct Claim {
    effects: Arc<Effects>,
    key: (Kind, u32),
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.effects
            .claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// A remote node's kill being sent and confirmed in the background
/// (see `restart`): whether it took hold. Shared: the restart's lease end
/// and the node's disk lease both wait for it.
pub(crate) type KillUnderWay = futures::future::Shared<futures::future::BoxFuture<'static, bool>>;

/// What an effect needs from its cycle.
pub struct Scope {
    pub nodes: Vec<Arc<Node>>,
    pub disks: Vec<Arc<chaos_mechanisms::disk::NodeDisk>>,
    pub net: Arc<CycleNet>,
    pub journal: Arc<Journal>,
    pub http: reqwest::Client,
    pub clock: Option<ClockSetup>,
    /// The campaign's `[leader]` probe, if the system has a leader.
    pub leader: Option<Arc<chaos_model::campaign::LeaderProbe>>,
}

impl Effects {
    pub fn new(scope: Scope, started: Instant, progress: watch::Receiver<Progress>) -> Arc<Self> {
        Arc::new(Self {
            nodes: scope.nodes,
            disks: scope.disks,
            net: scope.net,
            journal: scope.journal,
            http: scope.http,
            clock: scope.clock,
            leader: scope.leader,
            started,
            progress,
            records: Mutex::new(Vec::new()),
            timers: Mutex::new(Vec::new()),
            ending: watch::channel(0).0,
            leases: Mutex::new(HashMap::new()),
            claims: Mutex::new(Default::default()),
            kills: Mutex::new(HashMap::new()),
        })
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    fn now_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn burst_running(&self) -> bool {
        !self.progress.borrow().done
    }

    /// The node that leads right now, by the campaign's `[leader]` probe.
    pub async fn leader(&self) -> Result<Option<u32>, String> {
        let probe = self.leader.as_ref().ok_or(
            "this campaign has no [leader] probe, so the host cannot tell which node leads; add one (see examples/etcd/campaign.toml) or target the primary",
        )?;
        Ok(chaos_lifecycle::roles::leader(probe, &self.http, &self.nodes).await)
    }

    /// The node a plugin named, or the reason it may not name it.
    fn node(&self, index: u32) -> Result<&Arc<Node>, String> {
        self.nodes.get(index as usize).ok_or_else(|| {
            format!(
                "node {index} does not exist: this campaign has nodes 0..{}",
                self.nodes.len().saturating_sub(1)
            )
        })
    }

    fn push(&self, mut record: EffectRecord) -> usize {
        if record.plugin.is_none() {
            record.plugin = ASKED_BY.try_with(Clone::clone).ok();
        }
        let mut r = self.records.lock().unwrap_or_else(|e| e.into_inner());
        r.push(record);
        r.len() - 1
    }

    fn update(&self, index: usize, f: impl FnOnce(&mut EffectRecord)) {
        if let Some(r) = self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(index)
        {
            f(r)
        }
    }

    /// Record lease `record` with what undoing it needs, at once: an end
    /// that comes before any later step still finds how to undo it.
    fn open(&self, record: EffectRecord, lease: Lease) -> usize {
        let slot = self.push(record);
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(slot, lease);
        slot
    }

    /// Note more of what undoing lease `slot` will need.
    fn remember(&self, slot: usize, f: impl FnOnce(&mut Lease)) {
        if let Some(lease) = self
            .leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&slot)
        {
            f(lease)
        }
    }

    /// Take what undoing lease `slot` needs (once).
    fn take_lease(&self, slot: usize) -> Option<Lease> {
        self.leases
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&slot)
    }

    /// End lease `slot` when `ms` have passed since `start_us`.
    fn schedule_end(self: &Arc<Self>, slot: usize, start_us: u64, ms: u32) {
        let me = Arc::downgrade(self);
        let elapsed = Duration::from_micros(self.now_us().saturating_sub(start_us));
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(ms as u64).saturating_sub(elapsed);
        let timer = tokio::spawn(async move {
            sleep_precisely_until(deadline).await;
            if let Some(effects) = me.upgrade() {
                // Ending runs in its own task so aborting the timers (in
                // revert_all) never cuts an undo in half; revert_all waits
                // for it through `ending`.
                tokio::spawn(async move { effects.end_lease(slot).await });
            }
        });
        self.timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(timer);
    }

    /// Undo every effect still in force. Called when the fault plugin is done,
    /// fails or times out, and again before teardown.
    pub async fn revert_all(&self) {
        self.abort_timers();
        for i in self.open_leases() {
            self.end_lease(i).await;
        }
        let mut ending = self.ending.subscribe();
        let _ = ending.wait_for(|n| *n == 0).await;
        // A partition whose call was cancelled before it was recorded is
        // lifted too.
        self.net.heal(None).await;
    }

    /// Stop the lease timers still sleeping (ends already started run on).
    fn abort_timers(&self) {
        for t in self
            .timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            t.abort();
        }
    }

    /// A `kind` lease on `node` is in force.
    fn lease_open(&self, kind: Kind, node: u32) -> bool {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|r| r.kind == kind && r.node == node && r.end_us.is_none())
    }

    /// Claim (kind, node) while a lease is set up; None when another
    /// request is setting one up right now.
    pub(crate) fn claim(self: &Arc<Self>, kind: Kind, node: u32) -> Option<Claim> {
        let key = (kind, node);
        let fresh = self
            .claims
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key);
        fresh.then(|| Claim {
            effects: self.clone(),
            key,
        })
    }

    /// End the open `kind` leases, for effects where a new one replaces the
    /// one in force (partitions, link faults); refused when another plugin
    /// holds it, which must never be cut short silently in a composed class.
    /// Returns a claim on `kind` to hold until the new lease is recorded:
    /// setting one up awaits (nft, iptables, a verdict loop starting), and
    /// another plugin's request must not pass this check meanwhile.
    async fn replace_own(self: &Arc<Self>, kind: Kind) -> Result<Claim, String> {
        let Some(claim) = self.claim(kind, u32::MAX) else {
            return Err(format!(
                "another request is setting up a {kind} right now; two plugins of a composed class may not hold a {kind} at once"
            ));
        };
        let me = ASKED_BY.try_with(Clone::clone).ok();
        let open: Vec<usize> = {
            let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
            let open = || {
                records
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.kind == kind && r.end_us.is_none())
            };
            if let Some((_, r)) = open().find(|(_, r)| match (&r.plugin, &me) {
                (Some(by), Some(me)) => by != me,
                _ => false,
            }) {
                return Err(format!(
                    "a {kind} of {} is in force (since {} ms); a new {kind} replaces only the asking plugin's own: two plugins of a composed class may not hold a {kind} at once",
                    r.plugin.as_deref().unwrap_or("another plugin"),
                    r.start_us / 1000
                ));
            }
            open()
                .filter(|(_, r)| r.requested_ms.is_some())
                .map(|(i, _)| i)
                .collect()
        };
        for slot in open {
            self.end_lease(slot).await;
        }
        Ok(claim)
    }

    /// Who holds the open `kind` lease on `node`, for a refusal: in a
    /// composed class the conflicting request often comes from another
    /// plugin, and the message must say which.
    fn holder(&self, kind: Kind, node: u32) -> String {
        let records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let Some(r) = records
            .iter()
            .find(|r| r.kind == kind && r.node == node && r.end_us.is_none())
        else {
            return String::new();
        };
        let by = match (&r.plugin, ASKED_BY.try_with(Clone::clone).ok()) {
            (Some(by), Some(me)) if *by == me => "this plugin".to_string(),
            (Some(by), _) => by.clone(),
            (None, _) => "the host".to_string(),
        };
        format!(" (by {by}, since {} ms)", r.start_us / 1000)
    }

    fn open_leases(&self) -> Vec<usize> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .enumerate()
            .filter(|(_, r)| r.end_us.is_none() && r.requested_ms.is_some())
            .map(|(i, _)| i)
            .collect()
    }

    /// End lease `slot` now (idempotent).
    async fn end_lease(&self, slot: usize) {
        let Some(rec) = self.records().get(slot).cloned() else {
            return;
        };
        if rec.end_us.is_some() {
            return;
        }
        // Claim the lease first so a timer and revert_all never both end it;
        // the claim counts in `ending` until the undo is done.
        let end = self.now_us();
        let mut claimed = false;
        self.update(slot, |r| {
            if r.end_us.is_none() {
                r.end_us = Some(end);
                claimed = true;
                self.ending.send_modify(|n| *n += 1);
            }
        });
        if !claimed {
            return;
        }
        let _done = EndingGuard(&self.ending);
        let (evidence, verified) = match self.take_lease(slot) {
            Some(lease) => {
                let journal = lease.journal_entry();
                let ended = lease.undo(self, slot, rec.node).await;
                if let Some(seq) = journal {
                    self.journal.done(seq);
                }
                ended
            }
            None => (String::new(), None),
        };
        let undone = self.now_us();
        self.update(slot, |r| {
            r.undone_us = Some(undone);
            if let Some(v) = verified {
                r.verified = r.verified && v;
            }
            if !evidence.is_empty() {
                r.evidence.push_str("; ");
                r.evidence.push_str(&evidence);
            }
        });
        if rec.kind == Kind::Partition {
            self.bypass_after_heal(slot).await;
        }
    }

    pub fn records(&self) -> Vec<EffectRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Sleep until `deadline` to within tens of microseconds: tokio's timer has
/// millisecond ticks (a lease would run up to ~2 ms long), so the last
/// stretch is slept on a blocking thread with the kernel's own timer.
async fn sleep_precisely_until(deadline: tokio::time::Instant) {
    const COARSE_MARGIN: Duration = Duration::from_millis(3);
    if let Some(coarse) = deadline.checked_sub(COARSE_MARGIN) {
        tokio::time::sleep_until(coarse).await;
    }
    let deadline = deadline.into_std();
    let fine = tokio::task::spawn_blocking(move || {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
    });
    if fine.await.is_err() {
        // The blocking pool is shutting down: fall back to the coarse timer.
        tokio::time::sleep_until(deadline.into()).await;
    }
}

/// Counts a lease end as finished when dropped (even if cancelled).
struct EndingGuard<'a>(&'a watch::Sender<usize>);

impl Drop for EndingGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Drop for Effects {
    /// A cycle dropped mid-way (Ctrl-C) still undoes what can be undone
    /// without waiting: stopped nodes continued, clocks reset, the grudge
    /// lifted. The journal covers the rest.
    fn drop(&mut self) {
        self.abort_timers();
        for slot in self.open_leases() {
            let rec = self.records.lock().unwrap_or_else(|e| e.into_inner())[slot].clone();
            if let Some(lease) = self.take_lease(slot) {
                let journal = lease.journal_entry();
                lease.undo_now(self, rec.node);
                if let Some(seq) = journal {
                    self.journal.done(seq);
                }
            }
        }
    }
}
