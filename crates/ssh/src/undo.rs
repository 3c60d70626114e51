//! Undo of what was journaled on remote hosts, over a plain `ssh` (the
//! run's master may be gone with a SIGKILLed chaos-host).

use crate::host::quote;
use chaos_journal::{Entry, RemoteUndo, Undo};
use chaos_model::hosts::HostSpec;

/// Undoes [`Entry::Remote`] entries.
pub struct RemoteHosts;

impl Undo for RemoteHosts {
    fn undo(&self, entry: &Entry) -> Option<Result<Option<String>, String>> {
        match entry {
            Entry::Remote { host, undo } => Some(undo_remote(host, undo)),
            _ => None,
        }
    }
}

/// Undo a journaled remote entry over a plain `ssh` (no master).
pub fn undo_remote(spec: &HostSpec, undo: &RemoteUndo) -> Result<Option<String>, String> {
    if let RemoteUndo::Master { socket } = undo {
        if !std::path::Path::new(socket).exists() {
            return Ok(None);
        }
        let mut cmd = std::process::Command::new("ssh");
        cmd.args(["-S", socket, "-O", "exit", "none"]);
        crate::host::output(spec, cmd)?;
        return Ok(Some(format!(
            "closed the SSH master connection to host {}",
            spec.name
        )));
    }
    let script = match undo {
        RemoteUndo::Master { .. } => unreachable!("handled above"),
        RemoteUndo::Group { pgid, start } => format!(
            "s=$(sed 's/.*) //' /proc/{pgid}/stat 2>/dev/null | cut -d' ' -f20); \
             if [ -n \"$s\" ] && [ \"$s\" != {start} ]; then exit 0; fi; \
             if pgrep -g {pgid} >/dev/null; then kill -KILL -- -{pgid}; kill -CONT -- -{pgid} 2>/dev/null; echo killed; fi"
        ),
        RemoteUndo::Stopped { pid, start } => format!(
            "s=$(sed 's/.*) //' /proc/{pid}/stat 2>/dev/null | cut -d' ' -f20); \
             if [ \"$s\" = {start} ]; then kill -CONT {pid} && echo continued; fi"
        ),
        RemoteUndo::Nft { table, fence } => {
            let delete = format!(
                "if nft list table {table} >/dev/null 2>&1; then nft delete table {table} && echo deleted; fi"
            );
            match fence {
                // An install still in flight there finishes first or never.
                Some(f) if crate::host::is_helper_dir(&f.dir) => {
                    crate::host::fence(&f.dir, &f.name, &delete)
                }
                _ => delete,
            }
        }
        RemoteUndo::Dir { path } => {
            // Only a directory of the name chaos-host gives its uploads:
            // a damaged journal never removes anything else.
            if !crate::host::is_helper_dir(path) {
                return Err(format!(
                    "host {}: journal names {path:?} as an uploaded helper directory, which is not one of chaos-host's (/tmp/chaos-host-*); left alone",
                    spec.name
                ));
            }
            let q = quote(path);
            format!("if [ -e {q} ]; then rm -rf {q} && echo removed; fi")
        }
        RemoteUndo::Mount { path } => unmount_script(path),
    };
    let out = crate::host::output(spec, crate::host::direct(spec, &script))?;
    Ok((!out.trim().is_empty()).then(|| match undo {
        RemoteUndo::Group { pgid, .. } => {
            format!("killed process group {pgid} on host {}", spec.name)
        }
        RemoteUndo::Stopped { pid, .. } => {
            format!("continued stopped process {pid} on host {}", spec.name)
        }
        RemoteUndo::Nft { table, .. } => {
            format!("deleted nftables table {table} on host {}", spec.name)
        }
        RemoteUndo::Dir { path } => {
            format!(
                "removed the uploaded chaos-host {path} on host {}",
                spec.name
            )
        }
        RemoteUndo::Mount { path } => {
            format!("unmounted disk layer {path} on host {}", spec.name)
        }
        RemoteUndo::Master { .. } => unreachable!("handled above"),
    }))
}

/// The script that detaches a journaled mount on a host: only a FUSE
/// mount at exactly that path (a damaged journal unmounts nothing else);
/// lazily, since a node of a killed run may still hold files there.
pub fn unmount_script(path: &str) -> String {
    let q = quote(path);
    format!(
        "if awk -v p={q} '$5 == p && / - fuse/ {{ f = 1 }} END {{ exit !f }}' /proc/self/mountinfo; then umount -l {q} && echo unmounted; fi"
    )
}
