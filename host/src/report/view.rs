//! The run as the reports see it: rebuilt from `cycles.jsonl` (and the
//! threshold from `summary.json` when there is one), so `chaos-host report
//! DIR` works on an interrupted run too.

use anyhow::Context;
use chaos_core::metrics::{ClassSummary, Tally};
use serde_json::Value;
use std::path::Path;

/// One fault class: its cycles, and the same typed summary the run wrote
/// (folded from the cycles by [`ClassSummary`], never recomputed here).
pub struct Class {
    pub summary: ClassSummary,
    pub cycles: Vec<Value>,
}

pub struct View {
    pub system: String,
    pub threshold: f64,
    pub seed: String,
    pub classes: Vec<Class>,
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
        let threshold = match summary.as_ref().and_then(|s| s["threshold"].as_f64()) {
            Some(t) => t,
            None => threshold_of_run(dir)?,
        };
        Self::build(cycles, summary.as_ref(), threshold)
    }

    pub fn build(
        cycles: Vec<Value>,
        summary: Option<&Value>,
        threshold: f64,
    ) -> anyhow::Result<Self> {
        let mut classes: Vec<Class> = Vec::new();
        for c in cycles {
            let tally: Tally = serde_json::from_value(c.clone())
                .context("cycles.jsonl: a line is not a cycle record")?;
            let i = match classes.iter().position(|k| k.summary.fault == tally.class) {
                Some(i) => i,
                None => {
                    let plugin = summary
                        .and_then(|s| s["classes"].as_array())
                        .and_then(|a| a.iter().find(|k| k["fault"] == tally.class.as_str()))
                        .and_then(|k| k["plugin"].as_str())
                        .map(str::to_string);
                    classes.push(Class {
                        summary: ClassSummary::new(&tally.class, plugin, threshold),
                        cycles: vec![],
                    });
                    classes.len() - 1
                }
            };
            classes[i].summary.add(&tally)?;
            classes[i].cycles.push(c);
        }
        for k in &mut classes {
            k.summary.finish();
        }
        Ok(View {
            system: summary
                .and_then(|s| s["system"].as_str())
                .unwrap_or("system under test")
                .to_string(),
            threshold,
            seed: summary
                .map(|s| s["seed"].to_string())
                .unwrap_or_else(|| "?".into()),
            classes,
        })
    }
}

/// The threshold of an interrupted run (no summary.json yet): from the
/// campaign its run.json names.
fn threshold_of_run(dir: &Path) -> anyhow::Result<f64> {
    let path = dir.join("run.json");
    let run: Value = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .with_context(|| {
            format!(
                "{}: no summary.json and no readable run.json, so the campaign's threshold is unknown",
                dir.display()
            )
        })?;
    let campaign = run["campaign"]
        .as_str()
        .with_context(|| format!("{}: no campaign", path.display()))?;
    Ok(chaos_model::campaign::Campaign::load(Path::new(campaign))?
        .file
        .campaign
        .threshold)
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
