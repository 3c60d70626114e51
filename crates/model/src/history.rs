//! A cycle's history: every operation (burst and recovery writes, reads
//! during the cycle, read-back reads) with its client, node, kind, value,
//! result and invoke/complete times on the host's monotonic clock, in
//! microseconds since the burst started (the zero of effect records).
//!
//! Clients push finished operations into a shared [`Recorder`]; at the end
//! of the cycle [`Recorder::finish`] orders them by invoke time and numbers
//! them, giving the [`History`] that assertion plugins read in chunks
//! (contract 0.2 `history`), `history.jsonl` in the cycle's directory holds
//! and `chaos-host export` turns into Jepsen's EDN.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// The file each cycle's history is written to, under
/// `OUT/history/<class>/cycle-<n>/`.
pub const FILE: &str = "history.jsonl";

/// What an operation did (the contract's `op-kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Set workload: insert one unique id.
    Write,
    /// Set workload: read every id of the cycle a node holds.
    Read,
    /// Register workload: write a value to a key.
    Put,
    /// Register workload: read a key.
    Get,
    /// Register workload: compare-and-set.
    Cas,
}

/// How an operation ended, as its client saw it (Jepsen's ok/fail/info).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Fail,
    Info,
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in invoke order, from 0.
    pub index: u64,
    /// The client that issued it; a client has one operation in flight.
    pub process: u32,
    pub node: u32,
    pub kind: Kind,
    /// Register key; empty for the set workload.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub key: String,
    /// write: the id; put: the value; cas: the new value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// get with `ok`: the value read (none: the key was absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<String>,
    /// read with `ok`: the ids of this cycle the node returned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<String>,
    pub status: Status,
    pub invoke_us: u64,
    /// None when it never completed (`info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_us: Option<u64>,
    /// Why it failed or is unknown, when the client knows (an answer that
    /// did not parse, a status, a timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// When one effect held (the contract's `effect-window`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EffectWindow {
    pub kind: String,
    pub node: u32,
    pub start_us: u64,
    pub end_us: Option<u64>,
}

/// A finished cycle's history, in index order, with its effect windows.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub ops: Vec<Op>,
    pub effects: Vec<EffectWindow>,
}

/// Collects operations from every client of a cycle.
pub struct Recorder {
    started: Instant,
    ops: Mutex<Vec<Op>>,
}

impl Recorder {
    /// A recorder whose times count from `started` (the burst's start).
    pub fn new(started: Instant) -> Self {
        Self {
            started,
            ops: Mutex::default(),
        }
    }

    /// The burst's start, which every time of the history counts from.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Microseconds from the burst start to `at` (0 if before).
    pub fn us(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_micros() as u64
    }

    /// Record one finished operation; its `index` is set by
    /// [`Recorder::finish`].
    pub fn push(&self, op: Op) {
        self.ops.lock().unwrap_or_else(|e| e.into_inner()).push(op);
    }

    /// The operations in invoke order, numbered from 0.
    pub fn finish(&self, effects: Vec<EffectWindow>) -> History {
        let mut ops = std::mem::take(&mut *self.ops.lock().unwrap_or_else(|e| e.into_inner()));
        ops.sort_by_key(|o| (o.invoke_us, o.process));
        for (i, op) in ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        History { ops, effects }
    }
}

impl Op {
    /// An operation invoked at `invoke_us`; fields beyond kind and times
    /// are filled by the caller.
    pub fn new(process: u32, node: u32, kind: Kind, invoke_us: u64) -> Self {
        Self {
            index: 0,
            process,
            node,
            kind,
            key: String::new(),
            value: None,
            expected: None,
            read: None,
            seen: Vec::new(),
            status: Status::Info,
            invoke_us,
            complete_us: None,
            error: None,
        }
    }
}

/// The operation a set-workload write came to. An answer the campaign does
/// not classify (`unexpected`) is `info`: the system said something, so
/// the write may have landed.
pub fn write_op(
    process: u32,
    node: u32,
    id: &str,
    outcome: Outcome,
    http_status: Option<u16>,
    invoke_us: u64,
    latency_us: u64,
) -> Op {
    let mut op = Op::new(process, node, Kind::Write, invoke_us);
    op.value = Some(id.to_string());
    op.status = match outcome {
        Outcome::Ok => Status::Ok,
        Outcome::QuorumNotMet | Outcome::Fail => Status::Fail,
        Outcome::Indeterminate | Outcome::Unexpected => Status::Info,
    };
    if op.status != Status::Info {
        op.complete_us = Some(invoke_us + latency_us);
    }
    if outcome != Outcome::Ok {
        op.error = Some(match http_status {
            Some(s) => format!("{} (status {s})", outcome.as_str()),
            None => outcome.as_str().to_string(),
        });
    }
    op
}

/// Process numbers of a cycle's clients: the burst's writers first, then
/// the recovery writer, then one reader per writer for reads during the
/// cycle, then one read-back client per node, then the register clients. A Jepsen process has one
/// operation in flight, so concurrent readers are processes of their own.
#[derive(Clone, Copy, Debug)]
pub struct Processes {
    pub writers: u32,
    pub readers: u32,
    pub nodes: u32,
}

impl Processes {
    pub fn recovery(&self) -> u32 {
        self.writers
    }
    pub fn reader(&self, r: u32) -> u32 {
        self.writers + 1 + r
    }
    pub fn read_back(&self, node: u32) -> u32 {
        self.writers + 1 + self.readers + node
    }
    /// Register client `c` (`[workload] kind = "register"`).
    pub fn register(&self, c: u32) -> u32 {
        self.writers + 1 + self.readers + self.nodes + c
    }
}

/// Write `history` as JSON lines to `path`: one line per effect window
/// (`{"effect": ...}`) first, then one per operation. Written to a
/// temporary file and renamed, so a reader never sees half a history.
pub fn write_jsonl(path: &Path, history: &History) -> anyhow::Result<()> {
    use anyhow::Context;
    let tmp = path.with_extension("jsonl.tmp");
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    for e in &history.effects {
        serde_json::to_writer(&mut out, &Line::Effect(e.clone()))?;
        out.write_all(b"\n")?;
    }
    for op in &history.ops {
        serde_json::to_writer(&mut out, op)?;
        out.write_all(b"\n")?;
    }
    out.into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// An effect line of `history.jsonl`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Effect(EffectWindow),
}

/// Read a `history.jsonl` back.
pub fn read_jsonl(path: &Path) -> anyhow::Result<History> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = History::default();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("{\"effect\"") {
            let Line::Effect(e) = serde_json::from_str(line)
                .with_context(|| format!("{}: line {}", path.display(), i + 1))?;
            h.effects.push(e);
        } else {
            h.ops.push(
                serde_json::from_str(line)
                    .with_context(|| format!("{}: line {}", path.display(), i + 1))?,
            );
        }
    }
    Ok(h)
}

/// What became of one write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged: the system says the write is committed.
    Ok,
    /// Refused with the campaign's quorum-not-met status.
    QuorumNotMet,
    /// Definitely not accepted: the connection was refused.
    Fail,
    /// Unknown: timeout or connection dropped mid-request; may have landed.
    Indeterminate,
    /// An answer the campaign does not classify: a status in none of
    /// `ok_status`, `quorum_not_met_status`, `indeterminate_status`. Counted
    /// apart, so a campaign that lists the wrong statuses is seen at once
    /// (a campaign saying 200 to a system answering 201 acknowledged
    /// nothing and passed).
    Unexpected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::QuorumNotMet => "quorum_not_met",
            Outcome::Fail => "fail",
            Outcome::Indeterminate => "indeterminate",
            Outcome::Unexpected => "unexpected",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_orders_by_invoke_and_numbers() {
        let r = Recorder::new(Instant::now());
        let mut a = Op::new(1, 0, Kind::Write, 50);
        a.status = Status::Ok;
        a.complete_us = Some(70);
        r.push(a);
        r.push(Op::new(0, 2, Kind::Read, 10));
        let h = r.finish(vec![]);
        assert_eq!(h.ops[0].invoke_us, 10);
        assert_eq!(h.ops[0].index, 0);
        assert_eq!(h.ops[1].index, 1);
        assert_eq!(h.ops[1].complete_us, Some(70));
    }

    #[test]
    fn jsonl_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE);
        let mut op = Op::new(0, 1, Kind::Read, 5);
        op.seen = vec!["a".into()];
        op.status = Status::Ok;
        op.complete_us = Some(9);
        let h = History {
            ops: vec![op],
            effects: vec![EffectWindow {
                kind: "pause".into(),
                node: 1,
                start_us: 3,
                end_us: None,
            }],
        };
        write_jsonl(&p, &h).unwrap();
        let back = read_jsonl(&p).unwrap();
        assert_eq!(back.ops, h.ops);
        assert_eq!(back.effects, h.effects);
    }
}
