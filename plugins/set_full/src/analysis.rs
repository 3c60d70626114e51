//! Jepsen's set-full analysis of a set workload's history, fed one
//! operation at a time in index (invoke) order so that a large history is
//! never held whole: only each id's write and the times reads saw it.
//!
//! Definitions (every time on the host's monotonic clock):
//! - an id is *known* once its write is acknowledged or a read returned it;
//! - *judging reads* are the `ok` reads served by nodes that promise
//!   read-your-writes (`stale_nodes`): every node, or only the primary
//!   when followers may lag by design;
//! - *stale*: a judging read that began after a write's acknowledgement
//!   (plus the grace `stale_grace_ms`, the replication lag the system is
//!   allowed) and did not return its id;
//! - *lost*: a known id that no judging read returned after some point: a
//!   judging read began after the later of its acknowledgement and the end
//!   of the last judging read that returned it (Jepsen's "lost", read on the
//!   nodes whose reads are promised complete);
//! - *never read*: an acknowledged id that no read returned and no judging
//!   read began after (else it is lost);
//! - *latency to visibility*: from the write's acknowledgement to the end of
//!   the first read that returned the id (0 when a read returned it before
//!   the acknowledgement arrived); an upper bound, as fine as the reads are
//!   frequent.

use std::collections::HashMap;

/// How a write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Fail,
    Info,
}

/// Which nodes promise that a read returns every write acknowledged before
/// it began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaleNodes {
    All,
    /// Only this node (the primary).
    Only(u32),
}

impl StaleNodes {
    fn judges(self, node: u32) -> bool {
        match self {
            StaleNodes::All => true,
            StaleNodes::Only(n) => n == node,
        }
    }
}

/// Where an operation sits: enough to name it in a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    pub index: u64,
    pub node: u32,
    pub invoke_us: u64,
    pub complete_us: u64,
}

#[derive(Clone, Debug, Default)]
struct Id {
    name: String,
    /// The write's index and acknowledgement time, when acknowledged.
    write: Option<(u64, u64)>,
    /// The first read (by end) that returned it.
    first_seen: Option<At>,
    /// The judging read that returned it and ended last.
    last_judged: Option<At>,
}

/// A stale read: `read` did not return `id`, acknowledged by op `write`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stale {
    pub read: At,
    pub id: String,
    pub write: u64,
    pub acked_us: u64,
    /// Acknowledged ids the read missed, this one included.
    pub missing: usize,
}

/// A lost id, with the last judging read that returned it (None when none
/// did) and the first judging read that began after it and missed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lost {
    pub id: String,
    pub write: Option<u64>,
    pub last_seen: Option<At>,
    pub missed_by: At,
}

/// What the analysis found.
#[derive(Clone, Debug, Default)]
pub struct Findings {
    pub acked: usize,
    /// Ids acknowledged or returned by a read.
    pub known: usize,
    pub reads: usize,
    pub judging_reads: usize,
    pub lost: Vec<Lost>,
    /// One entry per stale read (its first missing id).
    pub stale: Vec<Stale>,
    pub never_read: Vec<String>,
    /// Latencies to visibility, microseconds, sorted.
    pub visibility_us: Vec<u64>,
}

/// The analysis in progress.
pub struct SetFull {
    stale_nodes: StaleNodes,
    /// A read is stale only when it began more than this after the ack.
    grace_us: u64,
    ids: Vec<Id>,
    by_name: HashMap<String, u32>,
    /// Acknowledged ids in arrival order: (ack time, id).
    acks: Vec<(u64, u32)>,
    /// Judging reads as (invoke, end) order: enough to find the first that
    /// began after a time.
    judging: Vec<At>,
    findings: Findings,
}

impl SetFull {
    pub fn new(stale_nodes: StaleNodes, grace_us: u64) -> Self {
        Self {
            stale_nodes,
            grace_us,
            ids: Vec::new(),
            by_name: HashMap::new(),
            acks: Vec::new(),
            judging: Vec::new(),
            findings: Findings::default(),
        }
    }

    fn id(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.by_name.get(name) {
            return i;
        }
        let i = self.ids.len() as u32;
        self.ids.push(Id {
            name: name.to_owned(),
            ..Id::default()
        });
        self.by_name.insert(name.to_owned(), i);
        i
    }

    /// A write of `id`; operations come in index order.
    pub fn write(&mut self, index: u64, id: &str, status: Status, complete_us: Option<u64>) {
        let i = self.id(id);
        if let (Status::Ok, Some(acked)) = (status, complete_us) {
            self.ids[i as usize].write = Some((index, acked));
            self.acks.push((acked, i));
            self.findings.acked += 1;
        }
    }

    /// An `ok` read that returned `seen`.
    pub fn read(&mut self, at: At, seen: &[String]) {
        self.findings.reads += 1;
        let judging = self.stale_nodes.judges(at.node);
        let mut returned = vec![false; self.ids.len()];
        for name in seen {
            let i = self.id(name) as usize;
            if i >= returned.len() {
                returned.resize(i + 1, false);
            }
            returned[i] = true;
            let id = &mut self.ids[i];
            if id.first_seen.is_none_or(|f| at.complete_us < f.complete_us) {
                id.first_seen = Some(at);
            }
            if judging
                && id
                    .last_judged
                    .is_none_or(|l| at.complete_us > l.complete_us)
            {
                id.last_judged = Some(at);
            }
        }
        if !judging {
            return;
        }
        self.findings.judging_reads += 1;
        self.judging.push(at);
        // Writes acknowledged before this read began were all invoked
        // before it, so they are in `acks` already.
        let mut missing = self.acks.iter().filter(|&&(acked, i)| {
            acked.saturating_add(self.grace_us) < at.invoke_us && !returned[i as usize]
        });
        if let Some(&(acked, i)) = missing.next() {
            let id = &self.ids[i as usize];
            self.findings.stale.push(Stale {
                read: at,
                id: id.name.clone(),
                write: id.write.map_or(0, |(w, _)| w),
                acked_us: acked,
                missing: 1 + missing.count(),
            });
        }
    }

    /// The findings, once every operation was fed.
    pub fn finish(mut self) -> Findings {
        self.judging.sort_by_key(|r| r.invoke_us);
        for id in &self.ids {
            let acked = id.write.map(|(_, t)| t);
            if acked.is_none() && id.first_seen.is_none() {
                continue; // never known
            }
            self.findings.known += 1;
            if let (Some((_, t)), Some(first)) = (id.write, id.first_seen) {
                self.findings
                    .visibility_us
                    .push(first.complete_us.saturating_sub(t));
            }
            // Known from the acknowledgement or the first read returning it,
            // and kept until the last judging read returning it ended.
            let since = acked
                .unwrap_or(0)
                .max(id.first_seen.map_or(0, |r| r.complete_us))
                .max(id.last_judged.map_or(0, |r| r.complete_us));
            let after = self.judging.partition_point(|r| r.invoke_us <= since);
            match self.judging.get(after) {
                Some(&missed_by) => self.findings.lost.push(Lost {
                    id: id.name.clone(),
                    write: id.write.map(|(w, _)| w),
                    last_seen: id.last_judged,
                    missed_by,
                }),
                // No judging read began after it was acknowledged.
                None if id.first_seen.is_none() => self.findings.never_read.push(id.name.clone()),
                None => {}
            }
        }
        self.findings.visibility_us.sort_unstable();
        self.findings
    }
}

/// The `p`-th percentile (0..=100) of sorted `values`, nearest rank.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}
