//! What the journal records: one thing to undo per entry.

use serde::{Deserialize, Serialize};

/// One thing to undo.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Entry {
    /// The owning chaos-host; first line of every journal. `boot` is the
    /// kernel's boot id: after a reboot, pids in the journal mean nothing.
    Owner {
        pid: i32,
        start: u64,
        #[serde(default)]
        boot: String,
    },
    /// A node's process group (leader pid = pgid, with its start time so a
    /// reused pid is never signalled).
    Group { pgid: i32, start: u64 },
    /// A process stopped with SIGSTOP.
    Stopped { pid: i32, start: u64 },
    /// A network namespace chaos-host created.
    Netns { name: String },
    /// An nftables table chaos-host created inside one of its namespaces.
    Nft { netns: String, table: String },
    /// A FUSE disk layer chaos-host mounted over a node's data dir.
    Mount { path: String },
    /// Entry `of` was undone.
    Done { of: u64 },
    /// Something done on a remote host (`[hosts]`): undone over SSH.
    Remote {
        host: chaos_model::hosts::HostSpec,
        undo: RemoteUndo,
    },
}

/// What to undo on a remote host.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum RemoteUndo {
    /// A node's process group there (leader's start time in clock ticks).
    Group { pgid: i32, start: u64 },
    /// A process stopped there with SIGSTOP.
    Stopped { pid: i32, start: u64 },
    /// An nftables table there, as "family name", installed behind
    /// `fence` (journals of earlier versions have none).
    Nft {
        table: String,
        #[serde(default)]
        fence: Option<Fence>,
    },
    /// The local SSH ControlMaster to the host (it daemonizes, so it
    /// would outlive a SIGKILLed chaos-host): closed by its socket.
    Master { socket: String },
    /// The directory holding the chaos-host binary uploaded there for
    /// clock leases and disk layers (`/tmp/chaos-host-RUN-HOST`): removed
    /// whole.
    Dir { path: String },
    /// A FUSE disk layer the uploaded helper mounted there over a node's
    /// data dir: detached.
    Mount { path: String },
}

/// Where a remote command that may outlive its run checks, under a lock,
/// that the run's `cleanup` has not fenced it off: `name` in the run's
/// directory `dir` on the host (`chaos_ssh::fenced`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Fence {
    pub dir: String,
    pub name: String,
}
