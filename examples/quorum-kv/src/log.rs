//! The durable local log: one JSON line per record, fdatasync'd before a
//! write is reported held (unless `--bug ack-before-fsync`: then only
//! written, and synced by a background task). Replayed on start.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Mutex;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub ns: String,
    #[serde(default)]
    pub value: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    #[serde(flatten)]
    pub record: Record,
}

struct Inner {
    file: File,
    entries: Vec<Entry>,
    ids: HashSet<String>,
    by_ns: HashMap<String, Vec<String>>,
    /// When each id of `by_ns` was appended, in the same order (for
    /// `--bug stale-reads`' lagging view).
    by_ns_at: HashMap<String, Vec<std::time::Instant>>,
    /// Register mode: each key's value, applied as records are stored.
    registers: HashMap<String, String>,
    /// Register mode: each key's values with when they were applied, for
    /// `--bug stale-reads`' lagging view of a register.
    register_at: HashMap<String, Vec<(std::time::Instant, String)>>,
}

/// The namespace of register records (`{"key": K, "value": V}` values).
pub const REGISTER_NS: &str = "__registers";

pub struct Log {
    inner: Mutex<Inner>,
    /// fdatasync each append before reporting it held.
    sync_each: bool,
}

impl Log {
    pub fn open(dir: &Path, sync_each: bool) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("log.jsonl");
        let mut inner = Inner {
            file: OpenOptions::new().create(true).append(true).open(&path)?,
            entries: Vec::new(),
            ids: HashSet::new(),
            by_ns: HashMap::new(),
            by_ns_at: HashMap::new(),
            registers: HashMap::new(),
            register_at: HashMap::new(),
        };
        for line in BufReader::new(File::open(&path)?).lines() {
            let line = line?;
            // A torn last line (crash mid-append) was never acknowledged.
            if let Ok(record) = serde_json::from_str::<Record>(&line) {
                inner.remember(record);
            }
        }
        Ok(Self {
            inner: Mutex::new(inner),
            sync_each,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// fdatasync what was appended. Blocking.
    pub fn sync(&self) -> std::io::Result<()> {
        self.lock().file.sync_data()
    }

    /// Append and fdatasync `record` unless already held. Blocking: call from
    /// a blocking thread. Returns true when the record was new.
    pub fn append(&self, record: Record) -> std::io::Result<bool> {
        let mut inner = self.lock();
        if inner.ids.contains(&record.id) {
            return Ok(false);
        }
        let mut line = serde_json::to_vec(&record)?;
        line.push(b'\n');
        inner.file.write_all(&line)?;
        if self.sync_each {
            inner.file.sync_data()?;
        }
        inner.remember(record);
        Ok(true)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.lock().ids.contains(id)
    }

    pub fn ids_in(&self, ns: &str) -> Vec<String> {
        let inner = self.lock();
        inner.by_ns.get(ns).cloned().unwrap_or_default()
    }

    /// The ids of `ns` appended at least `lag` ago: a view that lags the
    /// log (`--bug stale-reads`). Ids are in append order, so it is a
    /// prefix.
    pub fn ids_in_lagging(&self, ns: &str, lag: std::time::Duration) -> Vec<String> {
        let inner = self.lock();
        let (Some(ids), Some(at)) = (inner.by_ns.get(ns), inner.by_ns_at.get(ns)) else {
            return Vec::new();
        };
        let visible = at.iter().take_while(|t| t.elapsed() >= lag).count();
        ids[..visible].to_vec()
    }

    /// Register mode: the value `key` held `lag` ago (`--bug stale-reads`).
    pub fn register_lagging(&self, key: &str, lag: std::time::Duration) -> Option<String> {
        let inner = self.lock();
        inner
            .register_at
            .get(key)?
            .iter()
            .rev()
            .find(|(at, _)| at.elapsed() >= lag)
            .map(|(_, v)| v.clone())
    }

    /// Register mode: the value `key` holds on this node.
    pub fn register(&self, key: &str) -> Option<String> {
        self.lock().registers.get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Entries with `seq > after`, at most `limit`.
    pub fn after(&self, after: u64, limit: usize) -> Vec<Entry> {
        let inner = self.lock();
        inner
            .entries
            .iter()
            .skip(after as usize)
            .take(limit)
            .cloned()
            .collect()
    }
}

impl Inner {
    fn remember(&mut self, record: Record) {
        if !self.ids.insert(record.id.clone()) {
            return;
        }
        if record.ns == REGISTER_NS
            && let (Some(k), Some(v)) =
                (record.value["key"].as_str(), record.value["value"].as_str())
        {
            self.registers.insert(k.to_string(), v.to_string());
            self.register_at
                .entry(k.to_string())
                .or_default()
                .push((std::time::Instant::now(), v.to_string()));
        }
        self.by_ns
            .entry(record.ns.clone())
            .or_default()
            .push(record.id.clone());
        self.by_ns_at
            .entry(record.ns.clone())
            .or_default()
            .push(std::time::Instant::now());
        let seq = self.entries.len() as u64 + 1;
        self.entries.push(Entry { seq, record });
    }
}
