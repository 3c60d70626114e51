//! What the host tells plugins about a cycle, in host-owned types. The cycle
//! loop builds these; each contract version's module in `wit/` converts them
//! into its generated types.

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

/// How a node ended the cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Running, and it answered the read-back.
    Up,
    /// Its process exited during the cycle.
    Exited,
    /// Running, but it did not answer the read-back.
    Silent,
}

/// One node after the convergence window.
#[derive(Clone, Debug)]
pub struct NodeObservation {
    pub node: u32,
    pub state: NodeState,
    pub ids: Vec<String>,
    /// Ms after the heal at which it held every acknowledged write.
    pub converged_ms: Option<u64>,
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
    /// Of `failed`, the answers with a status the campaign does not classify.
    pub unexpected: Vec<String>,
    pub indeterminate: Vec<String>,
    pub nodes: Vec<NodeObservation>,
    pub threshold: f64,
    /// Every operation of the cycle, read by 0.2 assertions in chunks
    /// through the `history` interface (0.1 plugins never see it).
    pub history: std::sync::Arc<chaos_model::history::History>,
}
