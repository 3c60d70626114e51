//! The kinds of effect, as records and claims name them: one variant per
//! effect file.

use serde::Serialize;
use std::fmt;

/// The kind of an effect, as records name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A kill or a terminate ([`crate::signal`]).
    Signal,
    /// SIGSTOP for a lease ([`crate::pause`]).
    Pause,
    /// A grudge over the network ([`crate::partition`]).
    Partition,
    /// A skew or a drift of a node's clock ([`crate::clock`]).
    Clock,
    /// A kill, then a start again ([`crate::restart`]).
    Restart,
    /// A fault of a node's disk layer ([`crate::disk`]).
    Disk,
    /// Degraded links ([`crate::link`]).
    Link,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Signal => "signal",
            Kind::Pause => "pause",
            Kind::Partition => "partition",
            Kind::Clock => "clock",
            Kind::Restart => "restart",
            Kind::Disk => "disk",
            Kind::Link => "link",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
