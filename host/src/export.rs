//! `chaos-host export OUT --format edn`: each cycle's `history.jsonl` as a
//! Jepsen history in EDN, `history.edn` beside it, so Jepsen's checkers,
//! Knossos and Elle read what chaos-host recorded.
//!
//! The mapping, one operation to two events (an `:invoke`, then an `:ok`,
//! `:fail` or `:info` completion), numbered by `:index` in time order,
//! `:time` in nanoseconds since the burst started:
//!
//! | chaos-host        | `:f`     | invoke `:value`     | completion `:value`      |
//! |-------------------|----------|---------------------|--------------------------|
//! | set `write` id    | `:add`   | `"id"`              | `"id"`                   |
//! | set `read`        | `:read`  | `nil`               | `#{"id" ...}` (ok)       |
//! | register `put`    | `:write` | `["k" "v"]`         | `["k" "v"]`              |
//! | register `get`    | `:read`  | `["k" nil]`         | `["k" "v"]` / `["k" nil]`|
//! | register `cas`    | `:cas`   | `["k" ["old" "new"]]` | same                   |
//!
//! Set writes are `:add` (not `:write`) because that is what Jepsen's
//! `set-full` checker reads; register values are Knossos' independent
//! `[key value]` tuples. An `info` operation that never completed gets its
//! `:info` event at the end of the history, and its process is retired as
//! Jepsen retires it: the client's later operations carry the process number
//! plus the number of processes (so no process has two operations open).
//!
//! EDN is written by hand: it is six value shapes here (keyword, string,
//! integer, nil, vector, set), and no well-kept Rust EDN crate writes maps
//! in a fixed key order.

use anyhow::{Context, bail};
use chaos_model::history::{self, History, Kind, Op, Status};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The export formats.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    /// Jepsen's EDN history (Knossos, Elle, jepsen.checker).
    Edn,
}

/// Export every cycle history under `out`; returns the files written.
pub fn export(out: &Path, format: Format) -> anyhow::Result<Vec<PathBuf>> {
    let Format::Edn = format;
    if !out.is_dir() {
        bail!(
            "{}: no such directory (give the --out dir of a run)",
            out.display()
        );
    }
    let files = history_files(out)?;
    if files.is_empty() {
        bail!(
            "{}: no history/*/cycle-*/{} in it: this run was recorded without histories (by a chaos-host before histories, or its cycles did not finish); run the campaign again to get them",
            out.display(),
            history::FILE
        );
    }
    // Everything is rendered before anything is written: a bad history
    // leaves no half-exported run.
    let mut rendered = Vec::new();
    for f in &files {
        let h = history::read_jsonl(f)?;
        rendered.push((f.with_file_name("history.edn"), to_edn(&h)));
    }
    for (path, text) in &rendered {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(rendered.into_iter().map(|(p, _)| p).collect())
}

/// `out/history/<class>/cycle-<n>/history.jsonl`, by class then cycle.
fn history_files(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let root = out.join("history");
    let mut files = Vec::new();
    let Ok(classes) = std::fs::read_dir(&root) else {
        return Ok(files);
    };
    for class in classes {
        let class = class?.path();
        let Ok(cycles) = std::fs::read_dir(&class) else {
            continue;
        };
        for c in cycles {
            let f = c?.path().join(history::FILE);
            if f.is_file() {
                files.push(f);
            }
        }
    }
    files.sort_by_key(|p| {
        let cycle: u32 = p
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("cycle-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        (
            p.parent().and_then(Path::parent).map(Path::to_path_buf),
            cycle,
        )
    });
    Ok(files)
}

/// One history as Jepsen EDN: one event map per line.
pub fn to_edn(h: &History) -> String {
    let processes = h.ops.iter().map(|o| o.process + 1).max().unwrap_or(0);
    let end_us = h
        .ops
        .iter()
        .map(|o| o.complete_us.unwrap_or(o.invoke_us))
        .max()
        .unwrap_or(0);
    // (time, rank, op index). Times are whole µs, so a client's next
    // invocation can share the µs of its previous completion: at one µs a
    // completion comes first (rank 0), then invocations (1), then the
    // completion of an op invoked that same µs (2), so no process has two
    // ops open and no op completes before it starts.
    let mut events: Vec<(u64, u8, usize)> = Vec::with_capacity(h.ops.len() * 2);
    for (i, op) in h.ops.iter().enumerate() {
        events.push((op.invoke_us, 1, i));
        let done = match (op.status, op.complete_us) {
            (Status::Info, None) => end_us + 1,
            (_, Some(t)) => t.max(op.invoke_us),
            (_, None) => op.invoke_us,
        };
        events.push((done, if done == op.invoke_us { 2 } else { 0 }, i));
    }
    events.sort();
    // A process that invoked an `info` op is retired: its later ops run as
    // a new process, `processes` further on.
    let mut generation: HashMap<u32, u32> = HashMap::new();
    let mut process_of = vec![0u64; h.ops.len()];
    let mut out = String::new();
    for (index, &(time_us, phase, i)) in events.iter().enumerate() {
        let op = &h.ops[i];
        if phase == 1 {
            let g = generation.entry(op.process).or_default();
            process_of[i] = op.process as u64 + *g as u64 * processes as u64;
            // Its completion is unknown: the client's next op is another
            // process's.
            if op.status == Status::Info {
                *g += 1;
            }
        }
        let kind = if phase == 1 {
            "invoke"
        } else {
            match op.status {
                Status::Ok => "ok",
                Status::Fail => "fail",
                Status::Info => "info",
            }
        };
        let _ = writeln!(
            out,
            "{{:type :{kind}, :f :{}, :value {}, :process {}, :time {}, :index {index}, :node {}{}}}",
            f(op.kind),
            value(op, phase != 1),
            process_of[i],
            time_us * 1000,
            op.node,
            match (&op.error, phase) {
                (Some(e), 0 | 2) => format!(", :error {}", string(e)),
                _ => String::new(),
            }
        );
    }
    out
}

fn f(kind: Kind) -> &'static str {
    match kind {
        Kind::Write => "add",
        Kind::Read | Kind::Get => "read",
        Kind::Put => "write",
        Kind::Cas => "cas",
    }
}

fn value(op: &Op, completed: bool) -> String {
    let opt = |v: &Option<String>| v.as_deref().map_or("nil".to_string(), string);
    match op.kind {
        Kind::Write => opt(&op.value),
        Kind::Read if completed && op.status == Status::Ok => {
            let ids: Vec<String> = op.seen.iter().map(|s| string(s)).collect();
            format!("#{{{}}}", ids.join(" "))
        }
        Kind::Read => "nil".into(),
        Kind::Put => format!("[{} {}]", string(&op.key), opt(&op.value)),
        Kind::Get if completed && op.status == Status::Ok => {
            format!("[{} {}]", string(&op.key), opt(&op.read))
        }
        Kind::Get => format!("[{} nil]", string(&op.key)),
        Kind::Cas => format!(
            "[{} [{} {}]]",
            string(&op.key),
            opt(&op.expected),
            opt(&op.value)
        ),
    }
}

/// An EDN string literal.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client's next op invoked in the µs its previous one completed:
    /// the completion comes first.
    #[test]
    fn a_shared_microsecond_keeps_ops_of_a_process_apart() {
        let mut a = Op::new(0, 0, Kind::Read, 10);
        a.status = Status::Ok;
        a.complete_us = Some(20);
        let mut b = a.clone();
        b.index = 1;
        b.invoke_us = 20;
        b.complete_us = Some(30);
        let edn = to_edn(&History {
            ops: vec![a, b],
            effects: vec![],
        });
        let types: Vec<&str> = edn.lines().map(|l| l.split(',').next().unwrap()).collect();
        assert_eq!(
            types,
            [
                "{:type :invoke",
                "{:type :ok",
                "{:type :invoke",
                "{:type :ok"
            ]
        );
    }

    #[test]
    fn an_info_op_completes_last_and_retires_its_process() {
        let mut w = Op::new(0, 0, Kind::Write, 10);
        w.value = Some("a\"b".into());
        w.status = Status::Info;
        let mut w2 = Op::new(0, 0, Kind::Write, 20);
        w2.value = Some("c".into());
        w2.status = Status::Ok;
        w2.complete_us = Some(30);
        let h = History {
            ops: vec![w, w2],
            effects: vec![],
        };
        let edn = to_edn(&h);
        let lines: Vec<&str> = edn.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(
            lines[0].starts_with(
                "{:type :invoke, :f :add, :value \"a\\\"b\", :process 0, :time 10000, :index 0"
            ),
            "{edn}"
        );
        // The second op's process is retired-and-renumbered (1 process).
        assert!(
            lines[1].contains(":type :invoke") && lines[1].contains(":process 1"),
            "{edn}"
        );
        assert!(lines[3].starts_with("{:type :info"), "{edn}");
    }
}
