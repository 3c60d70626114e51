//! An assertion that reports a ratio outside [0, 1] (seed 000 published
//! 6.286 as a convergence figure), for the test that such a figure fails
//! its cycle, not the campaign.

use chaos_sdk::{Assertion, Figure, Observations, Outcome, PluginInfo, Verdict};

struct BadFigure;

impl Assertion for BadFigure {
    fn describe() -> PluginInfo {
        chaos_sdk::assertion_info("bad_figure", env!("CARGO_PKG_VERSION"))
            .author("chaos-host tests")
            .describe("reports lost_ratio = 6.286 (tests only)")
            .build()
    }

    fn check(_obs: Observations) -> Verdict {
        Verdict {
            outcome: Outcome::Pass,
            reasons: vec![],
            figures: vec![Figure {
                name: "lost_ratio".into(),
                value: 6.286,
            }],
        }
    }
}

chaos_sdk::export_assertion!(BadFigure);
