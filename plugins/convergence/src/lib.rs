//! `convergence`: every acknowledged write must be present on every node
//! that is still alive after settle (seeds 000-002's convergence bound,
//! computed per id, never from counts).

use chaos_sdk::{Assertion, Figure, NodeState, Observations, Outcome, PluginInfo, Verdict};
use std::collections::HashSet;

struct Convergence;

/// Ids named in a failure reason, at most; the host keeps the full list.
const MAX_NAMED: usize = 20;

impl Assertion for Convergence {
    fn describe() -> PluginInfo {
        chaos_sdk::assertion_info("convergence", env!("CARGO_PKG_VERSION"))
            .author("chaos-host")
            .describe(
                "acknowledged writes present on every live node / acknowledged writes >= threshold",
            )
            .build()
    }

    fn check(obs: Observations) -> Verdict {
        let live: Vec<HashSet<&str>> = obs
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Up)
            .map(|n| n.ids.iter().map(String::as_str).collect())
            .collect();
        if live.is_empty() {
            return Verdict {
                outcome: Outcome::Unknown,
                reasons: vec!["no node alive after settle: convergence cannot be judged".into()],
                figures: vec![],
            };
        }
        let lost: Vec<&str> = obs
            .acked
            .iter()
            .map(String::as_str)
            .filter(|id| live.iter().any(|ids| !ids.contains(id)))
            .collect();
        let acked = obs.acked.len();
        let bound = if acked == 0 {
            1.0
        } else {
            (acked - lost.len()) as f64 / acked as f64
        };
        let mut reasons = Vec::new();
        if !lost.is_empty() {
            let named: Vec<&str> = lost.iter().take(MAX_NAMED).copied().collect();
            reasons.push(format!(
                "{} acknowledged write(s) missing on a live node: {}{}",
                lost.len(),
                named.join(", "),
                if lost.len() > MAX_NAMED { ", ..." } else { "" }
            ));
        }
        let outcome = if bound >= obs.threshold {
            Outcome::Pass
        } else {
            reasons.push(format!(
                "convergence_bound {bound:.4} < threshold {}",
                obs.threshold
            ));
            Outcome::Fail
        };
        Verdict {
            outcome,
            reasons,
            figures: vec![
                Figure {
                    name: "convergence_bound".into(),
                    value: bound,
                },
                Figure {
                    name: "lost_acked".into(),
                    value: lost.len() as f64,
                },
            ],
        }
    }
}

chaos_sdk::export_assertion!(Convergence);
