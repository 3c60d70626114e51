//! The client contract: the operations a cycle asks of the system, and how
//! a driver process is told them.
//!
//! Every client answers the same operations: `ready` (may node N serve
//! now), `setup` (once per cycle, before the first write), `add` (write one
//! id through node N) and `read` (every id node N holds), each answered
//! `ok`, `fail` (it did not happen) or `info` (it may have happened). The
//! built-in client renders them as the campaign's HTTP templates
//! (`[write]`, `[read]`, `[ready]`); `[client] command` hands them to a
//! driver process as JSON lines (this module's [`Request`] and [`Reply`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `[client]`: a driver process (`command`) or a component (`plugin`) per
/// client process.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSection {
    /// Program and arguments of the driver. A program containing `/` is
    /// relative to the campaign file's directory; a bare name is looked up
    /// on PATH. Placeholders: `{namespace}`, `{cycle}`, `{process}`.
    #[serde(default)]
    pub command: Vec<String>,
    /// A client component (contract 0.3.0's `client-plugin` world): a path
    /// relative to the campaign file, or an `oci://` reference.
    pub plugin: Option<String>,
    /// Extra environment for the driver (templates as `command`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// An operation unanswered this long is `info`, and its process is
    /// retired (killed; the next operation starts a fresh one).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_timeout() -> u64 {
    5_000
}

/// Bounds of `[client] timeout_ms`.
pub const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 10..=600_000;

/// Placeholders of `[client] command` and `env`.
pub const DRIVER_KEYS: &[&str] = &["namespace", "cycle", "process"];

/// One operation, as a driver reads it: one JSON object per line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the reply; a reply with another `seq` is garbage.
    pub seq: u64,
    #[serde(flatten)]
    pub op: Op,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// May `node` serve operations now?
    Ready { node: u32 },
    /// Create what the workload needs (a stream, a table), once per cycle.
    Setup,
    /// Write `id` through `node`.
    Add { node: u32, id: String },
    /// Every id `node` holds in this cycle's namespace.
    Read { node: u32 },
    /// The register workload: write `value` to register `key`.
    Put {
        node: u32,
        key: String,
        value: String,
    },
    /// Read register `key`: the reply's `value` (null: never written).
    Get { node: u32, key: String },
    /// Write `value` if the register holds `expected` (null: never written).
    Cas {
        node: u32,
        key: String,
        expected: Option<String>,
        value: String,
    },
}

impl Op {
    pub fn name(&self) -> &'static str {
        match self {
            Op::Ready { .. } => "ready",
            Op::Setup => "setup",
            Op::Add { .. } => "add",
            Op::Read { .. } => "read",
            Op::Put { .. } => "put",
            Op::Get { .. } => "get",
            Op::Cas { .. } => "cas",
        }
    }
}

/// What came of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyType {
    /// It happened (a write acknowledged; a read's ids are in `ids`).
    Ok,
    /// It certainly did not happen.
    Fail,
    /// It may have happened.
    Info,
}

/// A driver's answer: one JSON object per line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub seq: u64,
    #[serde(rename = "type")]
    pub kind: ReplyType,
    /// Why, for `fail` and `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A read's ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
    /// A get's value: a string, or null for a register never written
    /// (`Some(Null)`: present and null; `None`: absent).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<serde_json::Value>,
}

/// A field that is present, null included (serde reads a null `Option` as
/// absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

impl Reply {
    /// Parse one line a driver wrote as the answer to `asked`: anything but
    /// a well-formed reply to that very operation is an error naming what
    /// is wrong.
    pub fn parse(line: &str, asked: &Request) -> Result<Reply, String> {
        let reply: Reply = serde_json::from_str(line.trim_end())
            .map_err(|e| format!("answered a line that is not a reply ({e}): {}", clip(line)))?;
        if reply.seq != asked.seq {
            return Err(format!(
                "answered seq {} to operation seq {} ({}): {}",
                reply.seq,
                asked.seq,
                asked.op.name(),
                clip(line)
            ));
        }
        let is_get = matches!(asked.op, Op::Get { .. });
        match (reply.kind, &reply.value) {
            (ReplyType::Ok, None) if is_get => {
                return Err(format!(
                    "answered a get ok without \"value\" (null for a register never written): {}",
                    clip(line)
                ));
            }
            (_, Some(v)) if !is_get || !(v.is_string() || v.is_null()) => {
                return Err(format!(
                    "answered \"value\" {v} to the {} operation (a get's value is a string or null): {}",
                    asked.op.name(),
                    clip(line)
                ));
            }
            _ => {}
        }
        let is_read = matches!(asked.op, Op::Read { .. });
        match (reply.kind, &reply.ids) {
            (ReplyType::Ok, None) if is_read => Err(format!(
                "answered a read ok without \"ids\": {}",
                clip(line)
            )),
            (_, Some(_)) if !is_read => Err(format!(
                "answered \"ids\" to the {} operation: {}",
                asked.op.name(),
                clip(line)
            )),
            _ => Ok(reply),
        }
    }
}

/// At most 200 bytes of `line`, for an error message.
fn clip(line: &str) -> String {
    let line = line.trim_end();
    let mut cut = line.len().min(200);
    while !line.is_char_boundary(cut) {
        cut -= 1;
    }
    let tail = if cut < line.len() { "…" } else { "" };
    format!("{:?}{tail}", &line[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(op: Op) -> Request {
        Request { seq: 7, op }
    }

    #[test]
    fn requests_are_one_flat_object() {
        let r = asked(Op::Add {
            node: 2,
            id: "c1-w3".into(),
        });
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"seq":7,"op":"add","node":2,"id":"c1-w3"}"#
        );
        let s = serde_json::to_string(&asked(Op::Setup)).unwrap();
        assert_eq!(s, r#"{"seq":7,"op":"setup"}"#);
    }

    #[test]
    fn replies_must_answer_the_operation_asked() {
        let read = asked(Op::Read { node: 0 });
        let ok = Reply::parse(r#"{"seq":7,"type":"ok","ids":["a"]}"#, &read).unwrap();
        assert_eq!(ok.ids.unwrap(), ["a"]);
        for (line, says) in [
            (r#"{"seq":8,"type":"ok","ids":[]}"#, "answered seq 8"),
            (r#"{"seq":7,"type":"ok"}"#, "without \"ids\""),
            ("hello", "not a reply"),
            (r#"{"seq":7,"type":"maybe"}"#, "not a reply"),
            (r#"{"seq":7,"type":"ok","ids":[],"x":1}"#, "not a reply"),
        ] {
            let e = Reply::parse(line, &read).unwrap_err();
            assert!(e.contains(says), "{line}: {e}");
        }
        let add = asked(Op::Add {
            node: 0,
            id: "x".into(),
        });
        let e = Reply::parse(r#"{"seq":7,"type":"ok","ids":[]}"#, &add).unwrap_err();
        assert!(e.contains("\"ids\" to the add"), "{e}");
        let info = Reply::parse(r#"{"seq":7,"type":"info","error":"timeout"}"#, &add).unwrap();
        assert_eq!(info.kind, ReplyType::Info);
        // A get's value: present (a string or null) on ok, nowhere else.
        let get = asked(Op::Get {
            node: 0,
            key: "k".into(),
        });
        let v = Reply::parse(r#"{"seq":7,"type":"ok","value":null}"#, &get).unwrap();
        assert_eq!(v.value, Some(serde_json::Value::Null));
        for (line, op, says) in [
            (r#"{"seq":7,"type":"ok"}"#, &get, "without \"value\""),
            (
                r#"{"seq":7,"type":"ok","value":3}"#,
                &get,
                "a string or null",
            ),
            (
                r#"{"seq":7,"type":"ok","value":"v"}"#,
                &add,
                "to the add operation",
            ),
        ] {
            let e = Reply::parse(line, op).unwrap_err();
            assert!(e.contains(says), "{line}: {e}");
        }
    }
}
