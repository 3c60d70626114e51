//! The register history the checker works on: operations with keys and
//! values interned to small integers, so that the search compares integers
//! and a 100,000-op history fits the plugin's memory many times over.

use std::collections::HashMap;

/// An interned value; [`ABSENT`] is the value of a key never written.
pub type Value = u32;
/// The state of a key nobody wrote (a get that found nothing reads it).
pub const ABSENT: Value = 0;

/// What a register operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Put,
    Get,
    Cas,
}

/// How it ended, as its client saw it (Jepsen's ok, fail, info).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Fail,
    Info,
}

/// One register operation, values interned.
#[derive(Clone, Debug)]
pub struct Op {
    pub index: u64,
    pub process: u32,
    pub node: u32,
    pub kind: Kind,
    pub key: u32,
    /// put and cas: the value written.
    pub value: Value,
    /// cas: the value expected.
    pub expected: Value,
    /// get with `ok`: the value read.
    pub read: Value,
    pub status: Status,
    pub invoke_us: u64,
    /// None when it never completed.
    pub complete_us: Option<u64>,
}

/// One operation as text, before interning.
#[derive(Clone, Debug)]
pub struct OpText<'a> {
    pub index: u64,
    pub process: u32,
    pub node: u32,
    pub kind: Kind,
    pub key: &'a str,
    pub value: Option<&'a str>,
    pub expected: Option<&'a str>,
    pub read: Option<&'a str>,
    pub status: Status,
    pub invoke_us: u64,
    pub complete_us: Option<u64>,
}

/// A register history: its operations in index order and the names of its
/// keys and values.
#[derive(Clone, Debug)]
pub struct History {
    pub ops: Vec<Op>,
    keys: Vec<String>,
    values: Vec<String>,
    key_ids: HashMap<String, u32>,
    value_ids: HashMap<String, Value>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

impl History {
    pub fn new() -> Self {
        Self {
            ops: Vec::new(),
            keys: Vec::new(),
            // Value 0 is ABSENT and has no name.
            values: vec![String::new()],
            key_ids: HashMap::new(),
            value_ids: HashMap::new(),
        }
    }

    /// Append an operation, interning its key and values.
    pub fn push(&mut self, op: OpText<'_>) {
        let key = match self.key_ids.get(op.key) {
            Some(&k) => k,
            None => {
                let k = self.keys.len() as u32;
                self.keys.push(op.key.to_owned());
                self.key_ids.insert(op.key.to_owned(), k);
                k
            }
        };
        let value = self.intern(op.value);
        let expected = self.intern(op.expected);
        let read = self.intern(op.read);
        self.ops.push(Op {
            index: op.index,
            process: op.process,
            node: op.node,
            kind: op.kind,
            key,
            value,
            expected,
            read,
            status: op.status,
            invoke_us: op.invoke_us,
            complete_us: op.complete_us,
        });
    }

    /// Intern a value by name (None is [`ABSENT`]).
    pub fn intern(&mut self, value: Option<&str>) -> Value {
        let Some(v) = value else { return ABSENT };
        if let Some(&id) = self.value_ids.get(v) {
            return id;
        }
        let id = self.values.len() as Value;
        self.values.push(v.to_owned());
        self.value_ids.insert(v.to_owned(), id);
        id
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    pub fn key_name(&self, key: u32) -> &str {
        &self.keys[key as usize]
    }

    /// A value's name; None for [`ABSENT`].
    pub fn value_name(&self, value: Value) -> Option<&str> {
        (value != ABSENT).then(|| self.values[value as usize].as_str())
    }

    /// Positions in `ops` of each key's operations, in index order.
    pub fn per_key(&self) -> Vec<Vec<usize>> {
        let mut keys = vec![Vec::new(); self.keys.len()];
        for (pos, op) in self.ops.iter().enumerate() {
            keys[op.key as usize].push(pos);
        }
        keys
    }

    /// One line naming everything about an operation, starting with
    /// `op <index>` (the report highlights operations named that way).
    pub fn describe(&self, op: &Op) -> String {
        let show = |v: Value| match self.value_name(v) {
            Some(name) => format!("{name:?}"),
            None => "absent".to_owned(),
        };
        let what = match op.kind {
            Kind::Put => format!("put {}", show(op.value)),
            Kind::Get if op.status == Status::Ok => format!("get -> {}", show(op.read)),
            Kind::Get => "get".to_owned(),
            Kind::Cas => format!("cas {} -> {}", show(op.expected), show(op.value)),
        };
        let status = match op.status {
            Status::Ok => "ok",
            Status::Fail => "fail",
            Status::Info => "info",
        };
        let ms = |us: u64| format!("{:.3} ms", us as f64 / 1000.0);
        let done = match op.complete_us {
            Some(c) => ms(c),
            None => "never".to_owned(),
        };
        format!(
            "op {}: process {} node {} key {:?} {what} {status}, invoked {} completed {done}",
            op.index,
            op.process,
            op.node,
            self.key_name(op.key),
            ms(op.invoke_us),
        )
    }
}
