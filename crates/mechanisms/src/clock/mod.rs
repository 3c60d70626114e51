//! The clock mechanism: a node's clock moved by patching its vDSO
//! (ptrace, [`vdso`]) or, where ptrace is refused, through libfaketime's
//! timestamp file; the helper a remote host runs for a lease
//! ([`lease_main`], [`remote`]). The lease logic (probes, evidence,
//! schedule) is the clock effect's.

pub mod remote;
pub mod vdso;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A clock probe: where a node tells its wall clock.
#[derive(Clone, Debug)]
pub struct ClockProbe {
    pub url: String,
    pub pointer: String,
    /// Read the clock from this HTTP-date header instead of `pointer`.
    pub header: Option<String>,
}

/// The clock plumbing of one cycle: vDSO patching, or each node's
/// libfaketime timestamp file where ptrace is refused.
#[derive(Clone, Debug)]
pub struct ClockSetup {
    /// libfaketime files (the fallback), when nodes were started with it.
    pub files: Vec<Option<PathBuf>>,
    /// Why vDSO patching is not used here, if it is not.
    pub fallback: Option<String>,
    pub probe: Option<ClockProbe>,
}

/// Known places of Debian's libfaketime (package `libfaketime`).
const CANDIDATES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

/// The library to preload: `CHAOS_LIBFAKETIME`, else a known path.
pub fn libfaketime() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHAOS_LIBFAKETIME") {
        return Some(PathBuf::from(p));
    }
    CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Environment that puts a node under libfaketime with `file` as its clock.
pub fn env(lib: &Path, file: &Path) -> Vec<(String, String)> {
    let preload = match std::env::var("LD_PRELOAD") {
        Ok(p) if !p.is_empty() => format!("{}:{p}", lib.display()),
        _ => lib.display().to_string(),
    };
    vec![
        ("LD_PRELOAD".into(), preload),
        ("FAKETIME_TIMESTAMP_FILE".into(), file.display().to_string()),
        ("FAKETIME_NO_CACHE".into(), "1".into()),
        ("DONT_FAKE_MONOTONIC".into(), "1".into()),
    ]
}

/// Write `offset_ms` to a node's timestamp file (libfaketime's relative
/// format, seconds with a fraction), atomically.
pub fn set_offset(file: &Path, offset_ms: i64) -> std::io::Result<()> {
    let sign = if offset_ms < 0 { '-' } else { '+' };
    let abs = offset_ms.unsigned_abs();
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{sign}{}.{:03}\n", abs / 1000, abs % 1000))?;
    std::fs::rename(&tmp, file)
}

/// The first process of group `pgid` that does not map libfaketime (a
/// zombie runs no code and is skipped), or `Err` when the group is empty.
#[allow(
    clippy::result_unit_err,
    reason = "one failure only: the group is empty; the clock effect says why"
)]
pub fn unloaded_member(pgid: i32) -> Result<Option<i32>, ()> {
    let members: Vec<i32> = chaos_journal::procfs::group_members(pgid)
        .into_iter()
        .filter(|&p| {
            chaos_journal::procfs::stat(nix::unistd::Pid::from_raw(p))
                .is_some_and(|s| s.state != 'Z')
        })
        .collect();
    if members.is_empty() {
        return Err(());
    }
    Ok(members
        .into_iter()
        .find(|&p| !chaos_journal::procfs::maps_library(p, "libfaketime")))
}

pub fn host_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How often a clock lease looks for new processes in the node's group.
pub const GROUP_POLL: Duration = Duration::from_millis(50);

/// What setting a skew on a process group did.
#[derive(Default)]
pub struct Applied {
    /// Pids whose offset is now the asked one.
    pub set: Vec<i32>,
    /// How many of them were patched now (the rest already were).
    pub newly: usize,
    /// Pids that could not be patched, with the reason.
    pub failed: Vec<String>,
}

/// Set `skew` in every live process of group `pgid`, patching those not
/// patched yet (blocking: reads /proc, runs the ptrace helper).
pub fn apply_to_group(pgid: i32, skew: vdso::Skew) -> Applied {
    let mut out = Applied::default();
    let members: Vec<i32> = chaos_journal::procfs::group_members(pgid)
        .into_iter()
        .filter(|&p| {
            chaos_journal::procfs::stat(nix::unistd::Pid::from_raw(p))
                .is_some_and(|s| s.state != 'Z')
        })
        .collect();
    let mut fresh = Vec::new();
    for pid in members {
        match vdso::patched_page(pid) {
            Ok(Some(page)) => match vdso::write_skew(pid, page, skew) {
                Ok(()) => out.set.push(pid),
                Err(e) => out.failed.push(format!("pid {pid}: {e}")),
            },
            Ok(None) if skew == vdso::Skew::default() => {} // nothing to reset
            Ok(None) => fresh.push(pid),
            // Exited meanwhile: nothing left to skew.
            Err(_) if !std::path::Path::new(&format!("/proc/{pid}")).exists() => {}
            Err(e) => out.failed.push(format!("pid {pid}: {e}")),
        }
    }
    if fresh.is_empty() {
        return out;
    }
    for (pid, got) in vdso::patch_via_helper(&fresh) {
        match got.and_then(|page| vdso::write_skew(pid, page, skew)) {
            Ok(()) => {
                out.set.push(pid);
                out.newly += 1;
            }
            Err(_) if !std::path::Path::new(&format!("/proc/{pid}")).exists() => {}
            Err(e) => out.failed.push(format!("pid {pid}: {e}")),
        }
    }
    out
}

/// What the `clock-lease` helper reports, one JSON line at the skew and
/// one at the reset (the host reads them over SSH).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct LeaseReport {
    /// Why nothing was tried (ptrace refused on that machine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Processes whose offset is now the asked one (zero after the reset).
    pub set: usize,
    /// How many of them were patched by this call.
    pub newly: usize,
    /// Processes that could not be patched or written, with the reason.
    pub failed: Vec<String>,
    /// Processes patched by the watch during the lease (final report).
    #[serde(default)]
    pub late: usize,
    /// How long before this line the drift's t0 was taken, ns (the host
    /// dates the lease from it: starting an SSH session can take a second).
    #[serde(default)]
    pub t0_age_ns: i64,
}

impl From<Applied> for LeaseReport {
    fn from(a: Applied) -> Self {
        Self {
            refused: None,
            set: a.set.len(),
            newly: a.newly,
            failed: a.failed,
            late: 0,
            t0_age_ns: 0,
        }
    }
}

fn report_line(r: &LeaseReport) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // The host waits for whole lines: one write, flushed at once.
    let _ = writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default());
    let _ = out.flush();
}

/// The hidden `clock-lease` command: the lease of a node on a remote host,
/// run there (the ptrace helper and /proc/PID/mem must be on the node's
/// machine). Sets the offset in group `pgid` (t0 is this machine's
/// monotonic clock, which the injected code reads), reports, patches
/// newcomers every [`GROUP_POLL`] until stdin closes (the host ends the
/// lease, or its SSH session died), then writes zeros and reports again.
/// It also ends when the group has no process left (the node was killed).
pub fn lease_main(pgid: i32, step_ns: i64, ppm: i64) {
    if let Some(why) = vdso::refusal() {
        report_line(&LeaseReport {
            refused: Some(why),
            ..Default::default()
        });
        return;
    }
    let skew = vdso::Skew {
        step_ns,
        ppm,
        t0_ns: vdso::monotonic_ns(),
    };
    let mut first: LeaseReport = apply_to_group(pgid, skew).into();
    first.t0_age_ns = vdso::monotonic_ns() - skew.t0_ns;
    report_line(&first);
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        // Any line or EOF ends the lease.
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
        let _ = tx.send(());
    });
    let mut late = 0;
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(GROUP_POLL) {
        if chaos_journal::procfs::group_members(pgid).is_empty() {
            break;
        }
        late += apply_to_group(pgid, skew).newly;
    }
    let mut end: LeaseReport = apply_to_group(pgid, vdso::Skew::default()).into();
    end.late = late;
    report_line(&end);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_skewed_whole_and_processes_exec_d_or_forked_later_are_covered() {
        use std::io::{BufRead, BufReader, Write};
        use std::os::unix::process::CommandExt;
        if vdso::refusal().is_some() {
            return;
        }
        // A shell that execs python on the first line it reads; python
        // prints its wall clock for each line, and a forked child's too.
        let py = "import os,sys,time\nfor l in sys.stdin:\n    if l.strip()=='fork':\n        pid=os.fork()\n        if pid==0:\n            print(int(time.time()*1000),flush=True); os._exit(0)\n        os.waitpid(pid,0)\n    else:\n        print(int(time.time()*1000),flush=True)";
        let mut child = std::process::Command::new("sh")
            .args(["-c", &format!("read x; exec python3 -u -c \"{py}\"")])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id() as i32;
        let mut stdin = child.stdin.take().unwrap();
        let out = std::cell::RefCell::new(BufReader::new(child.stdout.take().unwrap()));
        let ask = |stdin: &mut std::process::ChildStdin, line: &str| {
            writeln!(stdin, "{line}").unwrap();
            let mut l = String::new();
            out.borrow_mut().read_line(&mut l).unwrap();
            l.trim().parse::<i64>().unwrap() - host_now_ms()
        };
        let skew = vdso::Skew {
            step_ns: 7_200_000_000_000,
            ppm: 0,
            t0_ns: 0,
        };
        // A process may be between states for a moment (its image being
        // set up, a child not yet gone): apply until the group is as
        // `ready` wants it, within a bound, or the assertions below fail.
        let apply_when = |skew: vdso::Skew, ready: &dyn Fn(&Applied) -> bool| {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let a = apply_to_group(pgid, skew);
                if ready(&a) || std::time::Instant::now() > until {
                    break a;
                }
                std::thread::yield_now();
            }
        };
        // The shell was just spawned: until the kernel has it set up, the
        // helper cannot stop it.
        let a = apply_when(skew, &|a| a.failed.is_empty() && !a.set.is_empty());
        assert_eq!(
            (a.set.len(), a.newly, a.failed.len()),
            (1, 1, 0),
            "{:?}",
            a.failed
        );
        // The shell execs python: a fresh vDSO, unpatched until the
        // lease's watch passes again.
        writeln!(stdin, "go").unwrap();
        let exe = format!("/proc/{pgid}/exe");
        while !std::fs::read_link(&exe)
            .unwrap()
            .to_string_lossy()
            .contains("python")
        {
            std::thread::yield_now();
        }
        // `exe` names python a moment before the new image is set up (its
        // vDSO mapped, its threads stoppable): until then the group has no
        // process to patch.
        let a = apply_when(skew, &|a| !a.set.is_empty());
        assert_eq!(
            (a.set.len(), a.newly),
            (1, 1),
            "the exec'd process is patched again: {:?}",
            a.failed
        );
        let off = ask(&mut stdin, "time");
        assert!((off - 7_200_000).abs() < 200, "exec'd: {off}");
        let off = ask(&mut stdin, "fork");
        assert!(
            (off - 7_200_000).abs() < 200,
            "forked child inherits: {off}"
        );
        // The forked child printed before it exited: it may still be in the
        // group for a moment.
        let a = apply_when(vdso::Skew::default(), &|a| a.set.len() == 1);
        assert_eq!((a.set.len(), a.newly), (1, 0));
        assert!(ask(&mut stdin, "time").abs() < 200, "reset");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn offsets_are_written_in_libfaketime_format() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("n.faketime");
        set_offset(&f, 2500).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "+2.500\n");
        set_offset(&f, -1005).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "-1.005\n");
        set_offset(&f, 0).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "+0.000\n");
    }
}
