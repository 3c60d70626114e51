//! `junit.xml`: one test case per fault class, for CI systems.

use super::view::{View, escape};

pub fn render(v: &View) -> String {
    let failures = v.classes.iter().filter(|c| !c.summary.pass).count();
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"chaos-host\" tests=\"{}\" failures=\"{failures}\">\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">\n",
        v.classes.len(),
        escape(&v.system),
        v.classes.len()
    );
    for c in &v.classes {
        let secs: f64 = c
            .cycles
            .iter()
            .filter_map(|x| x["phases_ms"].as_object())
            .flat_map(|p| p.values().filter_map(|t| t.as_f64()))
            .sum::<f64>()
            / 1000.0;
        out.push_str(&format!(
            "    <testcase classname=\"chaos-host.{}\" name=\"{}\" time=\"{secs:.3}\">\n",
            escape(&v.system),
            escape(&c.summary.fault)
        ));
        let figures = format!(
            "cycles={} passed={} writes={} ok={} quorum_not_met={} fail={} indeterminate={} unexpected={} lost_acked={} convergence_bound={:.4} threshold={}",
            c.cycles.len(),
            c.summary.passed_cycles,
            c.summary.counts.writes,
            c.summary.counts.ok,
            c.summary.counts.quorum_not_met,
            c.summary.counts.fail,
            c.summary.counts.indeterminate,
            c.summary.counts.unexpected,
            c.summary.lost_acked,
            c.summary.convergence_bound,
            v.threshold
        );
        if !c.summary.pass {
            let reasons: Vec<String> = c
                .cycles
                .iter()
                .filter(|x| x["status"] != "pass")
                .map(|x| {
                    format!(
                        "cycle {} {}: {}",
                        x["cycle"],
                        x["status"].as_str().unwrap_or("?"),
                        x["reasons"]
                            .as_array()
                            .map(|r| r
                                .iter()
                                .filter_map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join("; "))
                            .unwrap_or_default()
                    )
                })
                .collect();
            out.push_str(&format!(
                "      <failure message=\"{}\">{}</failure>\n",
                escape(&figures),
                escape(&reasons.join("\n"))
            ));
        }
        out.push_str(&format!(
            "      <system-out>{}</system-out>\n",
            escape(&figures)
        ));
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
