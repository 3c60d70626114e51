//! What a person reads: a line per cycle while the campaign runs, a table
//! per fault class at the end, and the files: `report.html` ([`html`]) and
//! `junit.xml` ([`junit`]), both rebuilt from `cycles.jsonl` ([`view`]).

mod html;
mod junit;
mod ops;
mod view;

use anyhow::Context;
use std::path::Path;

use crate::summary::Summary;
use chaos_core::metrics::{CycleRecord, Status};
use std::time::Duration;

pub fn cycle_line(r: &CycleRecord, cycles: u32, took: Duration) -> String {
    // Anything but a pass shouts.
    let status = match r.status {
        Status::Pass => "pass".to_string(),
        other => other.as_str().to_uppercase(),
    };
    let mut line = format!(
        "[{}] cycle {}/{cycles} {status}: ok={} quorum_not_met={} fail={} indeterminate={} unexpected={} lost_acked={} convergence={:.4}",
        r.class,
        r.cycle,
        r.counts.ok,
        r.counts.quorum_not_met,
        r.counts.fail,
        r.counts.indeterminate,
        r.counts.unexpected,
        r.lost_acked,
        r.convergence_bound,
    );
    if let Some(rec) = &r.recovery {
        let at = |ms: Option<u64>| ms.map_or("never".to_string(), |m| format!("{m} ms"));
        match &rec.skipped {
            Some(why) => line.push_str(&format!(" recovery skipped: {why};")),
            None => line.push_str(&format!(
                " recovery={}/{} first_ack={}",
                rec.acked,
                rec.wanted,
                at(rec.first_ack_ms)
            )),
        }
    }
    line.push_str(&format!(" ({:.1} s)", took.as_secs_f64()));
    if !r.reasons.is_empty() {
        line.push_str(" — ");
        line.push_str(&r.reasons.join("; "));
    }
    line
}

pub fn table(s: &Summary) -> String {
    let mut out = format!(
        "\n{} — {} cycles x {} writes per class, threshold {}\n\n{:<26} {:>6} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>11}  {}\n",
        s.system,
        s.cycles_per_class,
        s.writes_per_cycle,
        s.threshold,
        "fault",
        "cycles",
        "writes",
        "ok",
        "qnm",
        "fail",
        "indet",
        "unexp",
        "lost",
        "convergence",
        "verdict"
    );
    for c in &s.classes {
        out.push_str(&format!(
            "{:<26} {:>6} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>6} {:>11.4}  {}\n",
            c.fault,
            c.cycles,
            c.counts.writes,
            c.counts.ok,
            c.counts.quorum_not_met,
            c.counts.fail,
            c.counts.indeterminate,
            c.counts.unexpected,
            c.lost_acked,
            c.convergence_bound,
            if c.pass { "PASS" } else { "FAIL" }
        ));
        if c.plugin
            .as_deref()
            .is_some_and(|p| p.contains("UNSANDBOXED"))
        {
            out.push_str("    UNSANDBOXED native plugin: ran with chaos-host's full privileges\n");
        }
        if let Some(p) = &c.quorum_probes {
            out.push_str(&format!(
                "    quorum probes: {} of {} passed, {} skipped",
                p.passed, p.ran, p.skipped
            ));
            if !p.refused_but_present.is_empty() {
                out.push_str(&format!(
                    "; refused yet present on a node: {}",
                    p.refused_but_present.join(", ")
                ));
            }
            out.push('\n');
        }
        for r in &c.reasons {
            out.push_str(&format!("    {r}\n"));
        }
    }
    out.push_str(&format!(
        "\noverall: {} (seed {}, {:.1} s)\n",
        if s.pass { "PASS" } else { "FAIL" },
        s.seed,
        s.wall_ms as f64 / 1000.0
    ));
    out
}

/// Write `report.html` and `junit.xml` into `dir` from its `cycles.jsonl`.
pub fn write_files(dir: &Path) -> anyhow::Result<()> {
    let v = view::View::load(dir)?;
    for (name, text) in [
        ("report.html", html::render(&v)),
        ("junit.xml", junit::render(&v)),
    ] {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
