//! The effects journal: everything chaos-host does to the machine that must
//! be undone is appended (and synced) here *before* it is done.
//!
//! A run that ends normally marks each entry undone and deletes its journal.
//! A run killed with SIGKILL leaves its journal behind; `chaos-host cleanup`,
//! or the next `chaos-host run`, replays it: node process groups are killed,
//! stopped processes continued, disk layers unmounted, nftables tables and
//! network namespaces deleted. Journals of runs still alive are left alone, so two campaigns can
//! share a machine.

use crate::procfs::group_members;
use crate::undo::Undo;
use anyhow::Context;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use crate::entry::{Entry, Fence, RemoteUndo};

#[derive(Serialize, Deserialize)]
struct Line {
    seq: u64,
    #[serde(flatten)]
    entry: Entry,
}

/// The journal of one run.
pub struct Journal {
    path: PathBuf,
    file: Mutex<(std::fs::File, u64)>,
    /// Undoes the entries of the mechanisms above (disk layers, remote
    /// hosts) when the journal is closed.
    above: &'static dyn Undo,
}

/// Where journals live: `CHAOS_STATE_DIR`, else `/run/chaos-host` for root,
/// else `$XDG_RUNTIME_DIR/chaos-host`, else a per-user dir in the temp dir.
pub fn state_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CHAOS_STATE_DIR") {
        return PathBuf::from(d);
    }
    if nix::unistd::geteuid().is_root() && Path::new("/run").is_dir() {
        return PathBuf::from("/run/chaos-host");
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        return PathBuf::from(d).join("chaos-host");
    }
    std::env::temp_dir().join(format!("chaos-host-{}", nix::unistd::geteuid()))
}

impl Journal {
    /// Open a new journal for run `run_id` in `dir`.
    /// `above` undoes the entries the journal cannot undo itself (see
    /// [`Undo`]), at [`Journal::close`].
    pub fn create(dir: &Path, run_id: &str, above: &'static dyn Undo) -> anyhow::Result<Self> {
        create_private_dir(dir)?;
        let path = dir.join(format!("{run_id}.journal"));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("creating journal {}", path.display()))?;
        let j = Self {
            path,
            file: Mutex::new((file, 0)),
            above,
        };
        let me = Pid::this();
        j.record(Entry::Owner {
            pid: me.as_raw(),
            start: start_time(me).unwrap_or(0),
            boot: boot_id(),
        })?;
        Ok(j)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `entry` and sync it to disk; returns its sequence number, to
    /// pass to [`Journal::done`] once undone.
    pub fn record(&self, entry: Entry) -> anyhow::Result<u64> {
        let mut g = self.file.lock().unwrap_or_else(|e| e.into_inner());
        g.1 += 1;
        let seq = g.1;
        let mut line = serde_json::to_vec(&Line { seq, entry })?;
        line.push(b'\n');
        g.0.write_all(&line)
            .and_then(|_| g.0.sync_data())
            .with_context(|| format!("writing journal {}", self.path.display()))?;
        Ok(seq)
    }

    /// Mark entry `seq` undone. Not synced: losing it only means the undo is
    /// repeated, and every undo is idempotent.
    pub fn done(&self, seq: u64) {
        let mut g = self.file.lock().unwrap_or_else(|e| e.into_inner());
        g.1 += 1;
        let n = g.1;
        if let Ok(mut line) = serde_json::to_vec(&Line {
            seq: n,
            entry: Entry::Done { of: seq },
        }) {
            line.push(b'\n');
            let _ = g.0.write_all(&line);
        }
    }

    /// Undo whatever is still open, then delete the journal; a journal
    /// with an undo that failed is kept, for `chaos-host cleanup`.
    pub fn close(self) -> Vec<String> {
        let (mut actions, failed) = match replay_file(&self.path, self.above) {
            Ok(r) => r,
            Err(e) => (Vec::new(), vec![format!("{e:#}")]),
        };
        if failed.is_empty() {
            let _ = std::fs::remove_file(&self.path);
        } else {
            actions.extend(kept(&self.path, failed));
        }
        actions
    }
}

/// The state dir holds journals whose entries chaos-host acts on (kills,
/// SIGCONTs): it must be ours alone. Created 0700 (an existing one of ours is
/// made 0700); one owned by someone else is refused.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating the journal dir {}", dir.display()))?;
    }
    let m = std::fs::metadata(dir)
        .with_context(|| format!("reading the journal dir {}", dir.display()))?;
    if m.uid() != nix::unistd::geteuid().as_raw() {
        anyhow::bail!(
            "journal dir {} belongs to uid {}, not to this user; remove it or set CHAOS_STATE_DIR",
            dir.display(),
            m.uid()
        );
    }
    if m.mode() & 0o022 != 0 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("making the journal dir {} private", dir.display()))?;
    }
    Ok(())
}

/// The kernel's boot id (empty when unreadable).
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Process start time (clock ticks since boot), to tell a pid from a
/// reused one.
pub fn start_time(pid: Pid) -> Option<u64> {
    crate::procfs::stat(pid).map(|s| s.start)
}

/// `pid` is still the process that started at `start`, and running: a
/// zombie (exited, not yet reaped) owns nothing any more.
fn same_process(pid: i32, start: u64) -> bool {
    crate::procfs::stat(Pid::from_raw(pid)).is_some_and(|s| s.start == start && s.state != 'Z')
}

/// Replay every journal in `dir` whose owner is no longer running.
/// Returns one line per action taken.
pub fn recover(dir: &Path, above: &dyn Undo) -> anyhow::Result<Vec<String>> {
    let mut actions = Vec::new();
    if dir.exists() {
        // Never act on journals someone else could have planted.
        create_private_dir(dir)?;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(actions);
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "journal") {
            continue;
        }
        // Another chaos-host may be replaying or removing it at the same
        // time: a journal that vanished is not an error.
        // One unreadable journal must not stop the others' recovery.
        let text = match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(t) => t,
                // A torn last line may end inside a character: the lines
                // before it still count. Nothing readable at all is not a
                // journal chaos-host wrote: moved aside, saying so.
                Err(e) => {
                    let t = String::from_utf8_lossy(e.as_bytes()).into_owned();
                    if parse(&t).is_empty() {
                        actions.push(set_aside(&path, "not UTF-8 text"));
                        continue;
                    }
                    t
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                actions.push(format!(
                    "WARNING: journal {} cannot be read ({e}): left in place; fix its permissions, then run `chaos-host cleanup` again",
                    path.display()
                ));
                continue;
            }
        };
        let same_boot = match parse(&text).first().map(|(_, e)| e.clone()) {
            Some(Entry::Owner { pid, start, boot }) => {
                let same_boot = boot.is_empty() || boot == boot_id();
                if same_boot && same_process(pid, start) {
                    continue; // a live run owns it
                }
                same_boot
            }
            // No owner line yet: a run that is just starting, unless old.
            _ => {
                let young = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_none_or(|age| age < std::time::Duration::from_secs(60));
                if young {
                    continue;
                }
                true
            }
        };
        let (done, failed) = replay_text(&text, same_boot, above);
        if !done.is_empty() {
            actions.push(format!("journal {}:", path.display()));
            actions.extend(done.into_iter().map(|a| format!("  {a}")));
        }
        if !failed.is_empty() {
            actions.extend(kept(&path, failed));
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("removing replayed journal {}", path.display()));
            }
        }
    }
    Ok(actions)
}

/// Move an unreadable journal to `<name>.corrupt`, out of every later
/// recovery's way, and say so.
fn set_aside(path: &Path, why: &str) -> String {
    let aside = path.with_extension("journal.corrupt");
    match std::fs::rename(path, &aside) {
        Ok(()) => format!(
            "WARNING: journal {} is unreadable ({why}): moved aside to {}; what it recorded was not undone, check it by hand",
            path.display(),
            aside.display()
        ),
        Err(e) => format!(
            "WARNING: journal {} is unreadable ({why}) and could not be moved aside ({e}); remove it by hand",
            path.display()
        ),
    }
}

fn parse(text: &str) -> Vec<(u64, Entry)> {
    // A torn last line (killed mid-write) is skipped: its effect was not
    // applied yet, since entries are written before the effect.
    text.lines()
        .filter_map(|l| serde_json::from_str::<Line>(l).ok())
        .map(|l| (l.seq, l.entry))
        .collect()
}

/// The report of a journal kept because undos failed.
fn kept(path: &Path, failed: Vec<String>) -> Vec<String> {
    let mut lines = vec![format!(
        "journal {} KEPT: {} undo(s) failed; fix the cause, then run `chaos-host cleanup` again:",
        path.display(),
        failed.len()
    )];
    lines.extend(failed.into_iter().map(|f| format!("  undo failed: {f}")));
    lines
}

/// Undo the open entries of one journal, newest first: what was done, and
/// what failed.
fn replay_file(path: &Path, above: &dyn Undo) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading journal {}", path.display()))?;
    Ok(replay_text(&text, true, above))
}

/// Undo the open entries of a journal's text, newest first. Across a reboot
/// the processes are long gone and their ids may belong to others: only
/// namespaces and tables are considered.
fn replay_text(text: &str, same_boot: bool, above: &dyn Undo) -> (Vec<String>, Vec<String>) {
    let entries = parse(text);
    let done: std::collections::HashSet<u64> = entries
        .iter()
        .filter_map(|(_, e)| match e {
            Entry::Done { of } => Some(*of),
            _ => None,
        })
        .collect();
    let mut actions = Vec::new();
    let mut failed = Vec::new();
    for (seq, entry) in entries.iter().rev() {
        if done.contains(seq) {
            continue;
        }
        if !same_boot && matches!(entry, Entry::Group { .. } | Entry::Stopped { .. }) {
            continue;
        }
        match try_undo(entry, above) {
            Ok(Some(a)) => actions.push(a),
            Ok(None) => {}
            Err(f) => failed.push(f),
        }
    }
    (actions, failed)
}

/// Undo one entry; idempotent. Returns what was done, if anything (a
/// failure is only reported by [`try_undo`]).
pub fn undo(entry: &Entry, above: &dyn Undo) -> Option<String> {
    try_undo(entry, above).ok().flatten()
}

/// Run `program args`; Err with the command line and its stderr.
fn command(program: &str, args: &[&str]) -> Result<(), String> {
    let shown = format!("`{program} {}`", args.join(" "));
    match std::process::Command::new(program).args(args).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "{shown} exited with {}: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("{shown}: {e}")),
    }
}

/// Undo one entry; idempotent. Ok(None) when there was nothing left to
/// undo; Err names the command that failed while the thing it should
/// remove is still there.
pub fn try_undo(entry: &Entry, above: &dyn Undo) -> Result<Option<String>, String> {
    Ok(match entry {
        Entry::Owner { .. } | Entry::Done { .. } => None,
        Entry::Stopped { pid, start } => {
            if same_process(*pid, *start) {
                let _ = kill(Pid::from_raw(*pid), Signal::SIGCONT);
                Some(format!("continued stopped process {pid}"))
            } else {
                None
            }
        }
        Entry::Group { pgid, start } => {
            // A live leader with another start time means the id was reused:
            // not ours. A gone leader with members left is still our group
            // (Linux does not hand out a pid in use as a process group id).
            let leader_alive = start_time(Pid::from_raw(*pgid));
            if leader_alive.is_some_and(|s| s != *start) {
                return Ok(None);
            }
            let members = group_members(*pgid);
            if members.is_empty() {
                return Ok(None);
            }
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGKILL);
            // Stopped members die of SIGKILL too; continue them anyway so
            // nothing is left in state T if the kill raced.
            let _ = killpg(Pid::from_raw(*pgid), Signal::SIGCONT);
            Some(format!(
                "killed process group {pgid} ({} process(es))",
                members.len()
            ))
        }
        Entry::Nft { netns, table } => {
            let (family, name) = table.split_once(' ').unwrap_or(("inet", table));
            match command(
                "ip",
                &[
                    "netns", "exec", netns, "nft", "delete", "table", family, name,
                ],
            ) {
                Ok(()) => Some(format!(
                    "deleted nftables table {table} in namespace {netns}"
                )),
                // Gone already (with its namespace, or never made).
                Err(_)
                    if command(
                        "ip",
                        &["netns", "exec", netns, "nft", "list", "table", family, name],
                    )
                    .is_err() =>
                {
                    None
                }
                Err(e) => return Err(e),
            }
        }
        Entry::Mount { .. } | Entry::Remote { .. } => match above.undo(entry) {
            Some(r) => r?,
            None => return Err(format!("no mechanism undoes {entry:?}")),
        },
        Entry::Netns { name } => match command("ip", &["netns", "delete", name]) {
            Ok(()) => Some(format!("deleted network namespace {name}")),
            Err(e) if netns_exists(name) => return Err(e),
            Err(_) => None,
        },
    })
}

/// `ip netns` still lists a namespace of this name.
fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::undo::NothingAbove;

    #[test]
    fn torn_last_line_is_ignored_and_done_entries_skip_undo() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::create(dir.path(), "t1", &NothingAbove).unwrap();
        let a = j
            .record(Entry::Netns {
                name: "chs-test-never-created".into(),
            })
            .unwrap();
        j.done(a);
        let text = std::fs::read_to_string(j.path()).unwrap();
        std::fs::write(j.path(), format!("{text}{{\"seq\":9,\"op\":\"gro")).unwrap();
        let parsed = parse(&std::fs::read_to_string(j.path()).unwrap());
        assert_eq!(parsed.len(), 3, "owner, netns, done; torn line skipped");
        assert_eq!(parsed[2].1, Entry::Done { of: a });
        assert_eq!(
            replay_file(j.path(), &NothingAbove).unwrap(),
            (vec![], vec![])
        );
    }

    /// A journal whose undo failed is kept and the failed command named
    /// (it used to be deleted, hiding what was left behind).
    #[test]
    fn a_failed_undo_keeps_the_journal_and_names_the_command() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root to make /run/netns entries");
            return;
        }
        // A directory where `ip netns delete` expects a mount point: the
        // delete fails and the entry stays.
        let name = format!("chs-test-undo-{}", std::process::id());
        let fake = Path::new("/run/netns").join(&name);
        std::fs::create_dir_all(fake.join("busy")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::create(dir.path(), "failing", &NothingAbove).unwrap();
        j.record(Entry::Netns { name: name.clone() }).unwrap();
        let path = j.path().to_path_buf();
        let lines = j.close();
        let text = lines.join("\n");
        std::fs::remove_dir_all(&fake).unwrap();
        assert!(path.exists(), "journal kept: {text}");
        assert!(
            text.contains("KEPT") && text.contains(&format!("`ip netns delete {name}`")),
            "{text}"
        );
        // With the cause gone, cleanup finishes.
        let rerun = replay_file(&path, &NothingAbove).unwrap();
        assert!(rerun.1.is_empty(), "{rerun:?}");
    }

    #[test]
    fn an_unreadable_journal_is_set_aside_and_the_others_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.journal");
        std::fs::write(&bad, [0xff, 0xfe, b'\n']).unwrap();
        // A dead run's journal beside it (its owner pid cannot exist).
        let dead = dir.path().join("dead.journal");
        let owner = Line {
            seq: 0,
            entry: Entry::Owner {
                pid: i32::MAX,
                start: 1,
                boot: String::new(),
            },
        };
        std::fs::write(&dead, serde_json::to_string(&owner).unwrap() + "\n").unwrap();
        let actions = recover(dir.path(), &NothingAbove).unwrap();
        assert!(
            actions
                .iter()
                .any(|a| a.contains("bad.journal is unreadable (not UTF-8 text): moved aside")),
            "{actions:?}"
        );
        assert!(!bad.exists() && dir.path().join("bad.journal.corrupt").exists());
        assert!(
            !dead.exists(),
            "the other journal was recovered: {actions:?}"
        );
        // Set aside once: the next recovery does not trip on it again.
        assert!(recover(dir.path(), &NothingAbove).unwrap().is_empty());
    }

    #[test]
    fn a_zombie_owner_counts_as_dead() {
        // A child that exited and is not reaped yet is a zombie.
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        let start = start_time(pid).unwrap();
        while crate::procfs::state(pid) != Some('Z') {
            std::thread::yield_now();
        }
        assert!(!same_process(pid.as_raw(), start));
        drop(child);
    }

    #[test]
    fn journal_of_a_live_owner_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::create(dir.path(), "live", &NothingAbove).unwrap();
        assert!(recover(dir.path(), &NothingAbove).unwrap().is_empty());
        assert!(j.path().exists(), "this process owns it and is alive");
    }

    #[test]
    fn dead_owner_group_is_killed_on_recover() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let start = start_time(Pid::from_raw(pid)).unwrap();
        let line = |seq, e| serde_json::to_string(&Line { seq, entry: e }).unwrap();
        // Owner: a pid that cannot be alive with that start time.
        let text = format!(
            "{}\n{}\n",
            line(
                1,
                Entry::Owner {
                    pid: 1,
                    start: 0,
                    boot: String::new()
                }
            ),
            line(2, Entry::Group { pgid: pid, start })
        );
        std::fs::write(dir.path().join("dead.journal"), text).unwrap();
        let actions = recover(dir.path(), &NothingAbove).unwrap();
        assert!(
            actions
                .iter()
                .any(|a| a.contains(&format!("killed process group {pid}"))),
            "{actions:?}"
        );
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
        assert!(!dir.path().join("dead.journal").exists());
    }
}
