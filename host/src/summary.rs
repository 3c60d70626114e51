//! `summary.json`: what a run (or a merge of shards) found, per class.

use crate::shard::Shard;
use chaos_core::metrics::ClassSummary;
use serde::Serialize;

/// The whole run's outcome, as `summary.json` holds it.
#[derive(Serialize)]
pub struct Summary {
    pub pass: bool,
    pub campaign: String,
    pub system: String,
    pub seed: u64,
    pub run_id: String,
    pub threshold: f64,
    pub cycles_per_class: u32,
    pub writes_per_cycle: u32,
    pub wall_ms: u64,
    pub network: &'static str,
    /// Cycles of a class run at once.
    pub parallel: u32,
    /// The shard this run is, when sharded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// The shard runs a `chaos-host merge` combined, one line each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<String>,
    pub classes: Vec<ClassSummary>,
}
