//! `report.html`: one self-contained page (no scripts, no fetches) with,
//! per fault class, the verdict and figures, a timeline of every write's
//! latency and outcome over all cycles with the fault windows shaded,
//! convergence per node, and per cycle a timeline of operations per client
//! (`ops`).

use super::view::{Class, View, escape};
use serde_json::Value;

const W: f64 = 900.0;
const H: f64 = 240.0;
const PAD: f64 = 40.0;

fn color(outcome: &str) -> &'static str {
    match outcome {
        "ok" => "#2e7d32",
        "quorum_not_met" => "#ef6c00",
        "fail" => "#c62828",
        "unexpected" => "#6a1b9a",
        _ => "#757575",
    }
}

pub fn render(v: &View) -> String {
    let overall = v.classes.iter().all(|c| c.summary.pass) && !v.classes.is_empty();
    let mut body = String::new();
    for c in &v.classes {
        body.push_str(&class_section(c, v.threshold));
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>chaos-host report: {system}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1000px}}
h1{{font-size:1.4em}} h2{{font-size:1.15em;margin-top:2em}}
.pass{{color:#fff;background:#2e7d32;padding:2px 8px;border-radius:3px}}
.fail{{color:#fff;background:#c62828;padding:2px 8px;border-radius:3px}}
table{{border-collapse:collapse;margin:.5em 0}} td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
th{{background:#f3f3f3}} td.l,th.l{{text-align:left}}
.legend span{{display:inline-block;margin-right:1em}}
.sw{{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:middle}}
</style></head><body>
<h1>chaos-host report: {system}</h1>
<p>Overall: <span class="{cls}">{verdict}</span> &middot; threshold {threshold} &middot; seed {seed} &middot; {n} fault class(es)</p>
{body}
</body></html>
"#,
        system = escape(&v.system),
        cls = if overall { "pass" } else { "fail" },
        verdict = if overall { "PASS" } else { "FAIL" },
        threshold = v.threshold,
        seed = escape(&v.seed),
        n = v.classes.len(),
    )
}

fn class_section(c: &Class, threshold: f64) -> String {
    let mut s = format!(
        r#"<section class="class" id="class-{id}">
<h2>{fault} <span class="{cls}">{verdict}</span></h2>
<p>{plugin}</p>
<table><tr><th>cycles</th><th>passed</th><th>writes</th><th>ok</th><th>quorum_not_met</th><th>fail</th><th>indeterminate</th><th>unexpected</th><th>lost_acked</th><th>convergence_bound</th></tr>
<tr><td>{n}</td><td>{passed}</td><td>{writes}</td><td>{ok}</td><td>{qnm}</td><td>{fail}</td><td>{indet}</td><td>{unexpected}</td><td>{lost}</td><td>{bound:.4} (≥ {threshold})</td></tr></table>
"#,
        id = escape(&c.summary.fault),
        fault = escape(&c.summary.fault),
        cls = if c.summary.pass { "pass" } else { "fail" },
        verdict = if c.summary.pass { "PASS" } else { "FAIL" },
        plugin = escape(c.summary.plugin.as_deref().unwrap_or("")),
        n = c.cycles.len(),
        passed = c.summary.passed_cycles,
        writes = c.summary.counts.writes,
        ok = c.summary.counts.ok,
        qnm = c.summary.counts.quorum_not_met,
        fail = c.summary.counts.fail,
        indet = c.summary.counts.indeterminate,
        unexpected = c.summary.counts.unexpected,
        lost = c.summary.lost_acked,
        bound = c.summary.convergence_bound,
    );
    s.push_str(&timeline(c));
    s.push_str(&nodes_table(c));
    s.push_str(&probes_table(c));
    s.push_str(&cycles_table(c));
    s.push_str(&super::ops::timelines(&c.cycles));
    s.push_str("</section>\n");
    s
}

/// Every write of every cycle on one time axis (from its burst's start),
/// latency up, coloured by outcome; each effect's window shaded.
fn timeline(c: &Class) -> String {
    let writes: Vec<(f64, f64, String)> = c
        .cycles
        .iter()
        .flat_map(|cy| cy["writes_detail"].as_array().cloned().unwrap_or_default())
        .map(|w| {
            (
                w["start_us"].as_f64().unwrap_or(0.0) / 1000.0,
                w["latency_us"].as_f64().unwrap_or(0.0) / 1000.0,
                w["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let windows: Vec<(f64, f64, String)> = c
        .cycles
        .iter()
        .flat_map(|cy| cy["effects"].as_array().cloned().unwrap_or_default())
        .map(|e: Value| {
            let start = e["start_us"].as_f64().unwrap_or(0.0) / 1000.0;
            let end = e["end_us"].as_f64().map_or(start, |x| x / 1000.0);
            (
                start,
                end,
                format!(
                    "{} {}",
                    e["kind"].as_str().unwrap_or(""),
                    e["detail"].as_str().unwrap_or("")
                ),
            )
        })
        .collect();
    let max_t = writes
        .iter()
        .map(|w| w.0 + w.1)
        .chain(windows.iter().map(|w| w.1))
        .fold(1.0_f64, f64::max);
    let max_l = writes.iter().map(|w| w.1).fold(1.0_f64, f64::max);
    let x = |t: f64| PAD + t / max_t * (W - 2.0 * PAD);
    let y = |l: f64| H - PAD - l / max_l * (H - 2.0 * PAD);
    let mut svg = format!(
        r##"<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="write latency over time">
<rect x="{PAD}" y="{PAD}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>
"##,
        pw = W - 2.0 * PAD,
        ph = H - 2.0 * PAD
    );
    for (start, end, what) in &windows {
        // An instantaneous effect (a kill) gets a 2 px band.
        let w = (x(*end) - x(*start)).max(2.0);
        svg.push_str(&format!(
            r##"<rect class="fault-window" x="{:.1}" y="{PAD}" width="{w:.1}" height="{}" fill="#e53935" fill-opacity="0.12"><title>{}</title></rect>
"##,
            x(*start),
            H - 2.0 * PAD,
            escape(what)
        ));
    }
    for (start, lat, outcome) in &writes {
        svg.push_str(&format!(
            r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{}"/>"#,
            x(*start),
            y(*lat),
            color(outcome)
        ));
    }
    svg.push_str(&format!(
        r#"
<text x="{PAD}" y="{}" font-size="11">0 ms</text><text x="{}" y="{}" font-size="11" text-anchor="end">{max_t:.0} ms since burst start</text>
<text x="4" y="{}" font-size="11">{max_l:.0} ms</text><text x="4" y="{}" font-size="11">latency</text>
</svg>
"#,
        H - PAD + 14.0,
        W - PAD,
        H - PAD + 14.0,
        PAD + 4.0,
        PAD + 18.0
    ));
    svg.push_str(
        r##"<div class="legend"><span><i class="sw" style="background:#2e7d32"></i>ok</span><span><i class="sw" style="background:#ef6c00"></i>quorum_not_met</span><span><i class="sw" style="background:#c62828"></i>fail</span><span><i class="sw" style="background:#757575"></i>indeterminate</span><span><i class="sw" style="background:#e53935;opacity:.3"></i>fault window</span></div>
"##,
    );
    svg
}

fn nodes_table(c: &Class) -> String {
    let mut per: std::collections::BTreeMap<u64, (usize, usize, Vec<String>)> = Default::default();
    for cy in &c.cycles {
        for n in cy["nodes"].as_array().into_iter().flatten() {
            let e = per.entry(n["node"].as_u64().unwrap_or(0)).or_default();
            if n["alive"] == true {
                e.0 += 1;
            }
            let missing = n["missing_acked"].as_array().cloned().unwrap_or_default();
            e.1 += missing.len();
            for id in missing.iter().filter_map(|i| i.as_str()) {
                if e.2.len() < 5 {
                    e.2.push(id.to_string());
                }
            }
        }
    }
    let mut s = String::from(
        "<table class=\"nodes\"><tr><th>node</th><th>cycles alive after settle</th><th>acknowledged writes missing</th><th class=\"l\">e.g.</th></tr>\n",
    );
    for (node, (alive, missing, ids)) in per {
        s.push_str(&format!(
            "<tr><td>{node}</td><td>{alive}</td><td>{missing}</td><td class=\"l\">{}</td></tr>\n",
            escape(&ids.join(", "))
        ));
    }
    s.push_str("</table>\n");
    s
}

/// The quorum probes per cycle, when the campaign ran
/// them: what each probe write became with its peers down, and any refused
/// write a node held anyway.
fn probes_table(c: &Class) -> String {
    let with: Vec<&Value> = c
        .cycles
        .iter()
        .filter(|cy| cy["probes"].is_object())
        .collect();
    if with.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "<h3>Quorum probes</h3><table class=\"probes\"><tr><th>cycle</th><th class=\"l\">one peer down</th><th class=\"l\">all peers down</th><th class=\"l\">refused but present</th></tr>\n",
    );
    let cell = |p: &Value| -> String {
        if !p.is_object() {
            return "-".into();
        }
        format!(
            "{} (expected {}){}",
            p["outcome"].as_str().unwrap_or("?"),
            p["expected"].as_str().unwrap_or("?"),
            if p["pass"] == true { " ✓" } else { " ✗" }
        )
    };
    for cy in with {
        let p = &cy["probes"];
        let (one, all) = match p["skipped"].as_str() {
            Some(why) => (format!("skipped: {why}"), String::new()),
            None => (cell(&p["one_peer_down"]), cell(&p["all_peers_down"])),
        };
        let present: Vec<&str> = p["refused_but_present"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        s.push_str(&format!(
            "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>\n",
            cy["cycle"],
            escape(&one),
            escape(&all),
            escape(&present.join(", "))
        ));
    }
    s.push_str("</table>\n");
    s
}

/// A cycle's recovery window in a few words: acknowledged of wanted, or
/// why it was skipped (records before `skipped` existed have none).
fn recovery_cell(r: &serde_json::Value) -> String {
    if r.is_null() {
        return "off".into();
    }
    if let Some(why) = r["skipped"].as_str() {
        return format!("skipped: {why}");
    }
    let mut s = format!("{}/{}", r["acked"], r["wanted"]);
    if let Some(ms) = r["recovered_ms"].as_u64() {
        s.push_str(&format!(" in {ms} ms"));
    }
    s
}

fn cycles_table(c: &Class) -> String {
    let mut s = String::from(
        "<details><summary>cycles</summary><table><tr><th>cycle</th><th class=\"l\">status</th><th>ok</th><th>lost</th><th>bound</th><th class=\"l\">recovery</th><th class=\"l\">effects</th><th class=\"l\">reasons</th></tr>\n",
    );
    for cy in &c.cycles {
        let by = |e: &serde_json::Value| e["plugin"].as_str().map(str::to_string);
        // A composed class's effects come from several plugins: say whose.
        let plugins: std::collections::BTreeSet<String> = cy["effects"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(by)
            .collect();
        let effects: Vec<String> = cy["effects"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{}{} {}{}",
                    match by(e) {
                        Some(p) if plugins.len() > 1 => format!("{p}: "),
                        _ => String::new(),
                    },
                    e["kind"].as_str().unwrap_or(""),
                    e["detail"].as_str().unwrap_or(""),
                    if e["verified"] == true {
                        " ✓"
                    } else {
                        " (not verified)"
                    }
                )
            })
            .collect();
        let reasons: Vec<&str> = cy["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str())
            .collect();
        s.push_str(&format!(
            "<tr><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>\n",
            cy["cycle"],
            escape(cy["status"].as_str().unwrap_or("")),
            cy["ok"],
            cy["lost_acked"],
            cy["convergence_bound"].as_f64().unwrap_or(0.0),
            escape(&recovery_cell(&cy["recovery"])),
            escape(&effects.join("; ")),
            escape(&reasons.join("; "))
        ));
    }
    s.push_str("</table></details>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recovery_cell_says_why_it_was_skipped() {
        let why = "the primary (node 0) is down and [recovery] through = \"primary\"; no node that may take writes is alive";
        let skipped = json!({"wanted": 5, "acked": 0, "skipped": why});
        assert_eq!(recovery_cell(&skipped), format!("skipped: {why}"));
        // A record written before `skipped` existed.
        let older = json!({"wanted": 5, "acked": 5, "recovered_ms": 14, "lost": []});
        assert_eq!(recovery_cell(&older), "5/5 in 14 ms");
        assert_eq!(recovery_cell(&serde_json::Value::Null), "off");
    }
}
