//! How the journal undoes what the layers above it did.
//!
//! The journal sits below every mechanism: it kills process groups,
//! continues stopped processes and deletes namespaces and tables itself
//! (plain commands), but a disk layer's mount or anything on a remote host
//! is undone by the mechanism that made it. Those mechanisms implement
//! [`Undo`]; the application hands one to the journal, so recovery reaches
//! them without the journal importing them.

use crate::entry::Entry;

/// Undoes the journal entries a mechanism above the journal owns.
pub trait Undo: Send + Sync {
    /// Undo `entry` if it is one of this mechanism's: `None` when it is
    /// not; else what was done (`Ok(None)`: nothing was left to undo), or
    /// the failure while the thing is still there. Idempotent.
    fn undo(&self, entry: &Entry) -> Option<Result<Option<String>, String>>;
}

/// Undoes nothing above the journal: for journals that only ever hold
/// processes, namespaces and tables (tests, benchmarks).
pub struct NothingAbove;

impl Undo for NothingAbove {
    fn undo(&self, _: &Entry) -> Option<Result<Option<String>, String>> {
        None
    }
}
