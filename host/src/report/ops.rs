//! Per cycle, a timeline of operations: one lane per client process, each
//! operation a bar from invoke to completion coloured by its result (an
//! `info` one runs to the end of the cycle), the effect windows shaded,
//! and the operations an assertion's verdict names highlighted.
//!
//! Naming convention: a verdict reason that contains `op 123` (the
//! operation's `index` in the history) names that operation; every such
//! mention in a reason of any verdict of the cycle is highlighted.

use super::view::escape;
use chaos_model::history::{self, Op, Status};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

const W: f64 = 900.0;
const LANE: f64 = 9.0;
const PAD: f64 = 40.0;
/// Operations drawn per cycle: past this the page stays readable and
/// small; the rest are in `history.jsonl`.
const MAX_OPS: usize = 3000;
/// Cycles per class given a timeline: the non-passing ones first.
const MAX_CYCLES: usize = 10;

/// The op timelines of a class's cycles (those with a history).
pub fn timelines(cycles: &[Value]) -> String {
    let mut picked: Vec<&Value> = cycles.iter().filter(|c| c["status"] != "pass").collect();
    picked.extend(cycles.iter().filter(|c| c["status"] == "pass"));
    let mut out = String::new();
    for cy in picked.into_iter().take(MAX_CYCLES) {
        let Some(path) = cy["history"].as_str() else {
            continue;
        };
        let Ok(h) = history::read_jsonl(Path::new(path)) else {
            continue;
        };
        out.push_str(&format!(
            "<details class=\"ops\"><summary>cycle {} operations ({} ops, {})</summary>\n{}</details>\n",
            cy["cycle"],
            h.ops.len(),
            escape(cy["status"].as_str().unwrap_or("")),
            svg(&h, &named_ops(cy))
        ));
    }
    out
}

/// Op indexes the cycle's verdict reasons name (`op 123`).
pub fn named_ops(cy: &Value) -> BTreeSet<u64> {
    let mut named = BTreeSet::new();
    for v in cy["verdicts"].as_array().into_iter().flatten() {
        for r in v["reasons"].as_array().into_iter().flatten() {
            let text = r.as_str().unwrap_or("");
            for (i, _) in text.match_indices("op ") {
                let digits: String = text[i + 3..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if let Ok(n) = digits.parse() {
                    named.insert(n);
                }
            }
        }
    }
    named
}

fn color(op: &Op) -> &'static str {
    match op.status {
        Status::Ok => "#2e7d32",
        Status::Fail => "#c62828",
        Status::Info => "#757575",
    }
}

fn svg(h: &history::History, named: &BTreeSet<u64>) -> String {
    let ops = &h.ops[..h.ops.len().min(MAX_OPS)];
    let end = ops
        .iter()
        .map(|o| o.complete_us.unwrap_or(o.invoke_us))
        .chain(h.effects.iter().map(|e| e.end_us.unwrap_or(e.start_us)))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let lanes = ops.iter().map(|o| o.process + 1).max().unwrap_or(1) as f64;
    let height = lanes * LANE + 2.0 * PAD;
    let x = |us: f64| PAD + us / end * (W - 2.0 * PAD);
    let mut s = format!(
        r##"<svg class="op-timeline" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" role="img" aria-label="operations per client over time">
"##
    );
    for e in &h.effects {
        let (a, b) = (
            x(e.start_us as f64),
            x(e.end_us.unwrap_or(end as u64) as f64),
        );
        s.push_str(&format!(
            r##"<rect class="op-fault-window" x="{a:.1}" y="{PAD}" width="{:.1}" height="{:.1}" fill="#e53935" fill-opacity="0.12"><title>{} on node {}</title></rect>
"##,
            (b - a).max(2.0),
            lanes * LANE,
            escape(&e.kind),
            e.node
        ));
    }
    for op in ops {
        let a = x(op.invoke_us as f64);
        let b = x(op.complete_us.unwrap_or(end as u64) as f64);
        let y = PAD + op.process as f64 * LANE;
        let hl = named.contains(&op.index);
        s.push_str(&format!(
            r#"<rect class="op{}" x="{a:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"{}><title>op {} process {} node {} {:?} {} {:?}</title></rect>
"#,
            if hl { " named" } else { "" },
            (b - a).max(1.0),
            LANE - 2.0,
            color(op),
            if hl {
                r##" stroke="#000" stroke-width="2""##
            } else {
                ""
            },
            op.index,
            op.process,
            op.node,
            op.kind,
            escape(op.value.as_deref().unwrap_or(&op.key)),
            op.status
        ));
    }
    s.push_str(&format!(
        r#"<text x="{PAD}" y="{:.1}" font-size="11">0 ms</text><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{:.0} ms since burst start; one lane per client, outlined: ops a verdict names</text>
<text x="4" y="{:.1}" font-size="11">client</text>
</svg>
"#,
        height - PAD + 14.0,
        W - PAD,
        height - PAD + 14.0,
        end / 1000.0,
        PAD - 4.0
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reasons_name_ops() {
        let cy = json!({"verdicts": [{"reasons": ["not linearizable: op 12 and op 7 (see op 12)", "op x", "no op"]}]});
        assert_eq!(named_ops(&cy), BTreeSet::from([7, 12]));
    }

    #[test]
    fn named_ops_are_outlined() {
        let mut a = Op::new(0, 0, history::Kind::Write, 0);
        a.status = Status::Ok;
        a.complete_us = Some(10);
        let mut b = a.clone();
        b.index = 1;
        b.process = 1;
        let h = history::History {
            ops: vec![a, b],
            effects: vec![],
        };
        let s = svg(&h, &BTreeSet::from([1]));
        assert_eq!(s.matches("class=\"op named\"").count(), 1);
        assert_eq!(s.matches("class=\"op\"").count(), 1);
    }
}
