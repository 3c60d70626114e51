//! The burst as the effects see it while it runs.

/// Writes issued so far, and whether the burst is over.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub issued: u32,
    pub done: bool,
}
