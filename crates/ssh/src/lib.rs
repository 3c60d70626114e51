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

pub use host::{Host, direct, fence, fenced, is_helper_dir, output, quote};
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

    /// A scratch run directory, removed on drop.
    struct Scratch(std::path::PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Self {
            let d = std::env::temp_dir().join(format!("chaos-fence-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Self(d)
        }
        fn s(&self) -> String {
            self.0.to_string_lossy().into_owned()
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn sh(script: &str) -> std::process::Output {
        std::process::Command::new("sh")
            .args(["-c", script])
            .output()
            .unwrap()
    }

    /// The CI race: a cut still in flight on the host when `cleanup` ran
    /// would install its table after the undo. Once fenced, it does nothing.
    #[test]
    fn a_fenced_command_arriving_after_the_fence_does_nothing() {
        let d = Scratch::new("late");
        let made = d.0.join("made");
        let undo = sh(&fence(&d.s(), "t-cut0", "echo undone"));
        assert_eq!(String::from_utf8_lossy(&undo.stdout), "undone\n");
        let late = sh(&fenced(
            &d.s(),
            "t-cut0",
            &format!("touch {}", quote(&made.to_string_lossy())),
        ));
        assert_eq!(late.status.code(), Some(75), "{late:?}");
        assert!(!made.exists());
        // Another cut's fence is its own.
        let other = sh(&fenced(
            &d.s(),
            "t-cut1",
            &format!("touch {}", quote(&made.to_string_lossy())),
        ));
        assert!(other.status.success(), "{other:?}");
        assert!(made.exists());
    }

    #[test]
    fn a_fenced_command_after_its_run_dir_is_gone_does_nothing() {
        let d = Scratch::new("gone");
        let dir = d.0.join("run");
        let made = d.0.join("made");
        let late = sh(&fenced(
            &dir.to_string_lossy(),
            "t-cut0",
            &format!("touch {}", quote(&made.to_string_lossy())),
        ));
        assert!(!late.status.success(), "{late:?}");
        assert!(!made.exists());
    }

    /// A command holding the lock (the install mid-way) finishes before the
    /// fence's undo runs, so the undo sees (and removes) what it made.
    #[test]
    fn the_fence_waits_for_a_command_in_flight() {
        let d = Scratch::new("flight");
        let (gate, started, made) = (d.0.join("gate"), d.0.join("started"), d.0.join("made"));
        assert!(
            sh(&format!("mkfifo {}", quote(&gate.to_string_lossy())))
                .status
                .success()
        );
        let q = |p: &std::path::Path| quote(&p.to_string_lossy());
        let install = std::process::Command::new("sh")
            .args([
                "-c",
                &fenced(
                    &d.s(),
                    "t-cut0",
                    &format!(
                        "touch {}; read x < {}; touch {}",
                        q(&started),
                        q(&gate),
                        q(&made)
                    ),
                ),
            ])
            .spawn()
            .unwrap();
        let mut install = install;
        while !started.exists() {
            assert!(
                install.try_wait().unwrap().is_none(),
                "the install ended early"
            );
            std::thread::yield_now();
        }
        let undo_script = fence(
            &d.s(),
            "t-cut0",
            &format!("test -e {} && echo saw", q(&made)),
        );
        let undo = std::thread::spawn(move || sh(&undo_script));
        // Release the install: it finishes, then the undo runs.
        std::fs::write(&gate, "go\n").unwrap();
        assert!(install.wait().unwrap().success());
        let undo = undo.join().unwrap();
        assert_eq!(String::from_utf8_lossy(&undo.stdout), "saw\n", "{undo:?}");
    }
}
