//! The run as the reports see it: rebuilt from `cycles.jsonl` (and the
//! threshold from `summary.json` when there is one), so `chaos-host report
//! DIR` works on an interrupted run too.

use anyhow::Context;
use serde_json::Value;
use std::path::Path;

/// One fault class: its cycles and the figures over them.
pub struct Class {
    pub fault: String,
    pub plugin: String,
    pub cycles: Vec<Value>,
    pub writes: u64,
    pub ok: u64,
    pub quorum_not_met: u64,
    pub fail: u64,
    pub indeterminate: u64,
    pub lost_acked: u64,
    pub convergence_bound: f64,
    pub passed_cycles: usize,
    pub pass: bool,
}

pub struct View {
    pub system: String,
    pub threshold: f64,
    pub seed: String,
    pub classes: Vec<Class>,
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

impl View {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let jsonl = dir.join("cycles.jsonl");
        let text = std::fs::read_to_string(&jsonl).with_context(|| {
            format!(
                "reading {} (is this a chaos-host --out dir?)",
                jsonl.display()
            )
        })?;
        let mut cycles = Vec::new();
        for (n, line) in text.lines().enumerate() {
            // A line cut by a crash is the only one that may be partial.
            match serde_json::from_str::<Value>(line) {
                Ok(v) => cycles.push(v),
                Err(e) if n + 1 == text.lines().count() => {
                    tracing::warn!("{}: last line is partial ({e}); skipped", jsonl.display())
                }
                Err(e) => anyhow::bail!("{} line {}: {e}", jsonl.display(), n + 1),
            }
        }
        let summary: Option<Value> = std::fs::read(dir.join("summary.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let threshold = summary
            .as_ref()
            .and_then(|s| s["threshold"].as_f64())
            .unwrap_or(0.995);
        Ok(Self::build(cycles, summary.as_ref(), threshold))
    }

    pub fn build(cycles: Vec<Value>, summary: Option<&Value>, threshold: f64) -> Self {
        let mut classes: Vec<Class> = Vec::new();
        for c in cycles {
            let fault = c["class"].as_str().unwrap_or("?").to_string();
            let i = match classes.iter().position(|k| k.fault == fault) {
                Some(i) => i,
                None => {
                    let plugin = summary
                        .and_then(|s| s["classes"].as_array())
                        .and_then(|a| a.iter().find(|k| k["fault"] == fault.as_str()))
                        .and_then(|k| k["plugin"].as_str())
                        .unwrap_or("")
                        .to_string();
                    classes.push(Class {
                        fault,
                        plugin,
                        cycles: vec![],
                        writes: 0,
                        ok: 0,
                        quorum_not_met: 0,
                        fail: 0,
                        indeterminate: 0,
                        lost_acked: 0,
                        convergence_bound: 1.0,
                        passed_cycles: 0,
                        pass: false,
                    });
                    classes.len() - 1
                }
            };
            classes[i].cycles.push(c);
        }
        for k in &mut classes {
            let mut everywhere = 0;
            for c in &k.cycles {
                k.writes += u(c, "writes");
                k.ok += u(c, "ok");
                k.quorum_not_met += u(c, "quorum_not_met");
                k.fail += u(c, "fail");
                k.indeterminate += u(c, "indeterminate");
                k.lost_acked += u(c, "lost_acked");
                everywhere += u(c, "acked_everywhere");
                if c["status"] == "pass" {
                    k.passed_cycles += 1;
                }
            }
            k.convergence_bound = if k.ok == 0 {
                1.0
            } else {
                everywhere as f64 / k.ok as f64
            };
            k.pass = k.passed_cycles == k.cycles.len() && k.convergence_bound >= threshold;
        }
        View {
            system: summary
                .and_then(|s| s["system"].as_str())
                .unwrap_or("system under test")
                .to_string(),
            threshold,
            seed: summary
                .map(|s| s["seed"].to_string())
                .unwrap_or_else(|| "?".into()),
            classes,
        }
    }
}

/// Text for XML and HTML.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
