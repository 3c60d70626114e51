//! The `history` interface's host side (contract 0.2): an assertion call
//! gets the cycle's [`History`] behind a resource it reads in chunks, so no
//! single call carries a large history, and the guest never holds more of
//! it than it asks for.

use chaos_model::history::History;
use std::sync::Arc;

/// Largest chunk served per call, whatever the guest asks: bounds the
/// host-side copy a single call makes.
pub const MAX_CHUNK: u32 = 4096;

/// What a guest's `ops` handle points at in the store's resource table.
pub struct OpsCursor {
    pub history: Arc<History>,
}

impl OpsCursor {
    /// Up to `max` (at most [`MAX_CHUNK`]) operations from `start`.
    pub fn chunk(&self, start: u64, max: u32) -> &[chaos_model::history::Op] {
        let ops = &self.history.ops;
        let from = (start.min(ops.len() as u64)) as usize;
        let to = from
            .saturating_add(max.min(MAX_CHUNK) as usize)
            .min(ops.len());
        &ops[from..to]
    }
}
