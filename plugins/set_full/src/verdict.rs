//! From findings to a verdict: reasons naming operations `op <index>` (the
//! report highlights them) and figures, ratios in [0, 1].

use crate::analysis::{Findings, percentile};
use chaos_sdk::{Figure, Outcome, Verdict};

/// Ids or reads named in a reason, at most; the figures count them all.
const MAX_NAMED: usize = 10;

fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

fn figure(name: &str, value: f64) -> Figure {
    Figure {
        name: name.into(),
        value,
    }
}

/// The verdict on a history's findings.
pub fn judge(f: Findings) -> Verdict {
    let mut figures = vec![
        figure("acked", f.acked as f64),
        figure("reads", f.reads as f64),
        figure("lost", f.lost.len() as f64),
        figure("stale_reads", f.stale.len() as f64),
        figure("never_read", f.never_read.len() as f64),
    ];
    if f.judging_reads == 0 {
        let why = if f.reads == 0 {
            "no ok read in the history: set_full judges by reads (set [read] during_ms in the campaign)".to_owned()
        } else {
            format!(
                "none of the {} ok reads was served by a node that promises read-your-writes (stale_nodes = \"primary\"): nothing to judge by",
                f.reads
            )
        };
        return Verdict {
            outcome: Outcome::Unknown,
            reasons: vec![why],
            figures,
        };
    }
    let ratio = |n: usize, of: usize| if of == 0 { 0.0 } else { n as f64 / of as f64 };
    figures.push(figure("lost_ratio", ratio(f.lost.len(), f.known)));
    figures.push(figure(
        "stale_read_ratio",
        ratio(f.stale.len(), f.judging_reads),
    ));
    if let (Some(p50), Some(p99)) = (
        percentile(&f.visibility_us, 50.0),
        percentile(&f.visibility_us, 99.0),
    ) {
        figures.push(figure("visibility_p50_ms", p50 as f64 / 1000.0));
        figures.push(figure("visibility_p99_ms", p99 as f64 / 1000.0));
    }
    let mut reasons = Vec::new();
    if !f.lost.is_empty() {
        reasons.push(format!("{} id(s) lost", f.lost.len()));
        for lost in f.lost.iter().take(MAX_NAMED) {
            let write = lost.write.map_or("never acknowledged".to_owned(), |w| {
                format!("written by op {w}")
            });
            let seen = lost
                .last_seen
                .map_or("never returned by a judging read".to_owned(), |r| {
                    format!(
                        "last returned by op {} on node {} ending {}",
                        r.index,
                        r.node,
                        ms(r.complete_us)
                    )
                });
            reasons.push(format!(
                "id {:?} ({write}) {seen}, then missing from op {} on node {} begun {} and every judging read after it",
                lost.id,
                lost.missed_by.index,
                lost.missed_by.node,
                ms(lost.missed_by.invoke_us),
            ));
        }
    }
    if !f.stale.is_empty() {
        reasons.push(format!(
            "{} stale read(s) of {} judged",
            f.stale.len(),
            f.judging_reads
        ));
        for stale in f.stale.iter().take(MAX_NAMED) {
            reasons.push(format!(
                "op {} on node {} began {} and missed id {:?} acknowledged {} by op {} ({} acknowledged id(s) missed in all)",
                stale.read.index,
                stale.read.node,
                ms(stale.read.invoke_us),
                stale.id,
                ms(stale.acked_us),
                stale.write,
                stale.missing,
            ));
        }
    }
    let outcome = if reasons.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    Verdict {
        outcome,
        reasons,
        figures,
    }
}

/// The verdict for a `stale_nodes` value the plugin does not know (the host
/// validates only the parameter's type).
pub fn bad_param(value: &str) -> Verdict {
    Verdict {
        outcome: Outcome::Unknown,
        reasons: vec![format!(
            "set_full: parameter stale_nodes = {value:?} is not \"all\" or \"primary\" (fix it in the campaign's [assertions] parameters)"
        )],
        figures: vec![],
    }
}
