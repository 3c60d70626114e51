//! What the host tells plugins about a cycle, in host-owned types. The cycle
//! loop builds these; only this file converts them into the generated
//! binding types, so a new contract version changes one place.

use super::bindings::types;

/// What a plugin knows about the cycle it runs in.
#[derive(Clone, Debug)]
pub struct CycleInfo {
    pub cycle: u32,
    pub seed: u64,
    pub nodes: u32,
    pub primary: u32,
    pub writes: u32,
    pub params: Vec<(String, String)>,
}

/// One node after the convergence window.
#[derive(Clone, Debug)]
pub struct NodeObservation {
    pub node: u32,
    pub alive: bool,
    pub ids: Vec<String>,
}

/// Everything an assertion sees about a cycle.
#[derive(Clone, Debug)]
pub struct Observations {
    pub cycle: CycleInfo,
    pub acked: Vec<String>,
    pub quorum_not_met: Vec<String>,
    /// Definitely not acknowledged: refused connections and answers the
    /// campaign does not classify.
    pub failed: Vec<String>,
    pub indeterminate: Vec<String>,
    pub nodes: Vec<NodeObservation>,
    pub threshold: f64,
}

impl From<CycleInfo> for types::CycleInfo {
    fn from(c: CycleInfo) -> Self {
        types::CycleInfo {
            cycle: c.cycle,
            seed: c.seed,
            nodes: c.nodes,
            primary: c.primary,
            writes: c.writes,
            params: c.params,
        }
    }
}

impl From<Observations> for types::Observations {
    fn from(o: Observations) -> Self {
        types::Observations {
            cycle: o.cycle.into(),
            acked: o.acked,
            quorum_not_met: o.quorum_not_met,
            failed: o.failed,
            indeterminate: o.indeterminate,
            nodes: o
                .nodes
                .into_iter()
                .map(|n| types::NodeObservation {
                    node: n.node,
                    alive: n.alive,
                    ids: n.ids,
                })
                .collect(),
            threshold: o.threshold,
        }
    }
}
