//! The effects journal and the process facts it trusts: everything
//! chaos-host does to a machine is journaled (and synced) before it is
//! done, so a SIGKILLed run is undone by the next one. Below every
//! mechanism; the mechanisms above undo their own entries through
//! [`Undo`].

pub mod entry;
pub mod journal;
pub mod procfs;
pub mod undo;

pub use journal::{Entry, Fence, Journal, RemoteUndo};
pub use undo::{NothingAbove, Undo};
