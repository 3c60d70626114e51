//! One [`Undo`] for every mechanism's journal entries: what a run's
//! journal is created with and what recovery replays with.

use chaos_journal::{Entry, Undo};

/// The disk layers' mounts ([`crate::disk::Mounts`]), then what was done
/// on remote hosts ([`chaos_ssh::RemoteHosts`]).
pub struct Mechanisms;

/// What every journal of a run is created with, and recovery replays with.
pub static UNDO: Mechanisms = Mechanisms;

impl Undo for Mechanisms {
    fn undo(&self, entry: &Entry) -> Option<Result<Option<String>, String>> {
        crate::disk::Mounts
            .undo(entry)
            .or_else(|| chaos_ssh::RemoteHosts.undo(entry))
    }
}
