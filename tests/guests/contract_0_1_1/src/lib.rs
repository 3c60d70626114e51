//! An assertion built against contract chaos:plugin@0.1.1 (the frozen WIT in
//! `wit/deps/chaos-plugin@0.1.1`), without chaos-sdk and so without the
//! version section: the host must find its version from its exports and
//! give it 0.1's observations through the adapter (`alive: bool`).

wit_bindgen::generate!({
    path: "../../../wit/deps/chaos-plugin@0.1.1",
    world: "assertion-plugin",
});

use chaos::plugin::types::{Figure, Observations, Outcome, PluginInfo, PluginKind, Verdict};

struct LegacyAlive;

impl exports::chaos::plugin::assertion::Guest for LegacyAlive {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "legacy_alive".into(),
            version: "0.1.1".into(),
            author: "chaos-host tests".into(),
            description: "counts live nodes as contract 0.1.1 sees them".into(),
            kind: PluginKind::Assertion,
            capabilities: vec![],
            params: vec![],
        }
    }

    fn check(obs: Observations) -> Verdict {
        let alive = obs.nodes.iter().filter(|n| n.alive).count();
        let holding = obs
            .nodes
            .iter()
            .filter(|n| n.alive && obs.acked.iter().all(|id| n.ids.contains(id)))
            .count();
        Verdict {
            outcome: if holding == alive {
                Outcome::Pass
            } else {
                Outcome::Fail
            },
            reasons: vec![format!("{alive} of {} nodes alive", obs.nodes.len())],
            figures: vec![
                Figure {
                    name: "alive_nodes".into(),
                    value: alive as f64,
                },
                Figure {
                    name: "acked".into(),
                    value: obs.acked.len() as f64,
                },
            ],
        }
    }
}

export!(LegacyAlive);
