//! Nodes on remote hosts over SSH (`[hosts]` in the campaign, or
//! `--hosts FILE`).
//!
//! chaos-host stays the control node (Jepsen's model): it opens one OpenSSH
//! ControlMaster per host through the `openssh` crate (the system's `ssh`,
//! so the operator's agent, `~/.ssh/config` and known_hosts apply) and runs
//! every command on a host as a session over that master. On each host run
//! the node's process group (started with `setsid`, its pid written to a
//! file), its data dir (the same path as locally) and every effect: signals,
//! pause, restart, and partitions as one nftables table per cycle between
//! host addresses (the net mechanism's remote backend). Clock skew and drift run there too: chaos-host
//! uploads its own binary once per host per run (journaled, removed at the
//! end) and runs its `clock-lease` helper over SSH for each lease
//! (the clock mechanism). Disk faults too: the same binary's
//! `disk-layer` helper mounts each node's FUSE layer there and serves the
//! disk leases over its SSH session (the disk mechanism). Writes, reads and probes
//! go from chaos-host to the host addresses over the real network.
//!
//! Everything done on a host is journaled with the host
//! ([`chaos_journal::journal::Entry::Remote`]) before it is done, so `chaos-host
//! cleanup` and the next run reach the host again (a plain `ssh`, no
//! master) and kill the recorded groups, delete the recorded tables and
//! remove the uploaded binaries.

mod host;
mod hosts;
pub mod undo;

pub use host::{Host, direct, is_helper_dir, output, quote};
pub use hosts::Hosts;
pub use undo::RemoteHosts;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_chaos_host_upload_dirs_are_removed_by_the_journal() {
        assert!(host::is_helper_dir("/tmp/chaos-host-a1b2c3-h0"));
        for bad in [
            "/",
            "/tmp",
            "/tmp/chaos-host-",
            "/tmp/chaos-host-x/../../etc",
            "/tmp/chaos-host-a b",
            "/home/chaos-host-x",
        ] {
            assert!(!host::is_helper_dir(bad), "{bad}");
        }
    }

    #[test]
    fn quote_survives_single_quotes() {
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
