//! The disk layer of a node on a remote host. The FUSE mount must be made
//! on the node's machine, so the uploaded chaos-host runs its hidden
//! `disk-layer BACKING MOUNTPOINT` there over the host's SSH master
//! ([`helper_main`]): it mounts the same layer as for local nodes
//! ([`crate::disk::Disk`]), reports readiness as one JSON line, then
//! answers one JSON line per command read from stdin (set or clear a
//! fault, read the counts, a power cut, unmount). stdin EOF (the run's
//! teardown, or the SSH session gone with a killed chaos-host) unmounts
//! too. The control node journals the mount with its host before it is
//! made ([`chaos_journal::journal::RemoteUndo::Mount`]), so `cleanup` and
//! `--resume` detach whatever a helper that died could not.

use crate::disk::{Counts, Disk};
use chaos_journal::journal::{Entry, Journal, RemoteUndo};
use chaos_model::contract::DiskFault;
use chaos_ssh::{Host, Hosts, quote};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::{Arc, Mutex};

/// A command to the helper, one JSON line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Set {
        fault: DiskFault,
    },
    Clear {
        fault: DiskFault,
    },
    Counts,
    PowerCut,
    /// SIGKILL process group `pgid` (the node's): over this open session
    /// a kill lands in one round trip, where a new SSH session costs
    /// hundreds of ms, so a power failure's kills land together.
    Kill {
        pgid: i32,
    },
    Unmount,
}

/// The helper's answer to each command (and its first line, readiness),
/// with the counts after it acted.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default)]
    pub counts: Counts,
    /// Bytes written through when `lose_unsynced` was cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub released: Option<u64>,
}

fn reply_line(r: &Reply) -> bool {
    let mut out = std::io::stdout().lock();
    // One write per line, flushed: the control node reads whole lines.
    // False once nobody reads (the session is gone).
    writeln!(out, "{}", serde_json::to_string(r).unwrap_or_default())
        .and_then(|()| out.flush())
        .is_ok()
}

/// The hidden `disk-layer` command, run on a remote host: mount the layer
/// of `backing` at `mountpoint`, serve commands from stdin until `unmount`
/// or EOF, then unmount.
pub fn helper_main(backing: &Path, mountpoint: &Path) {
    // No terminal, but a dropped session must never kill the helper before
    // it unmounts: it ends on stdin EOF instead. SIGPIPE is already ignored
    // by the Rust runtime.
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler
    // code, so nothing runs in signal context.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGHUP,
            nix::sys::signal::SigHandler::SigIgn,
        );
    }
    let fail = |error: String| {
        reply_line(&Reply {
            error: Some(error),
            ..Default::default()
        });
    };
    if let Err(why) = crate::disk::available() {
        return fail(why);
    }
    let disk = match Disk::mount(backing, mountpoint, None) {
        Ok(d) => d,
        Err(e) => return fail(format!("{e:#}")),
    };
    let counts = || disk.shared.counts();
    if reply_line(&Reply {
        counts: counts(),
        ..Default::default()
    }) {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let mut reply = Reply::default();
            let mut last = false;
            match serde_json::from_str::<Request>(&line) {
                Ok(Request::Set { fault }) => disk.set_fault(fault),
                Ok(Request::Clear { fault }) => match disk.clear_fault(fault) {
                    Some(Ok(n)) => reply.released = Some(n),
                    Some(Err(e)) => reply.error = Some(format!("writing through: {e}")),
                    None => {}
                },
                Ok(Request::Counts) => {}
                Ok(Request::PowerCut) => disk.power_cut(),
                Ok(Request::Kill { pgid }) => {
                    let group = nix::unistd::Pid::from_raw(pgid);
                    if let Err(e) =
                        nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL)
                    {
                        reply.error = Some(format!("SIGKILL to process group {pgid}: {e}"));
                    }
                }
                Ok(Request::Unmount) => {
                    last = true;
                    if let Err(e) = disk.unmount() {
                        reply.error = Some(format!("{e:#}"));
                    }
                }
                Err(e) => reply.error = Some(format!("not a command: {line:?}: {e}")),
            }
            reply.counts = counts();
            if !reply_line(&reply) || last {
                break;
            }
        }
    }
    // EOF or a broken session: detach (a node may still hold files open).
    if let Err(e) = disk.unmount() {
        eprintln!("disk-layer: unmounting {}: {e:#}", mountpoint.display());
    }
}

/// A remote node's layer, seen from chaos-host: the helper's session.
pub struct RemoteDisk {
    /// The host's name, for messages.
    pub host: String,
    pub mountpoint: String,
    session: Mutex<Option<Session>>,
    journal: Arc<Journal>,
    seq: u64,
}

struct Session {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<ChildStdout>,
}

impl RemoteDisk {
    /// Mount the layer of `backing` at `mountpoint` on `host` with the
    /// helper `bin` there (blocking until it reports), journaled first.
    pub fn mount(
        host: &Host,
        bin: &str,
        backing: &Path,
        mountpoint: &Path,
        journal: Arc<Journal>,
    ) -> Result<Self, String> {
        let name = host.spec.name.clone();
        let path = mountpoint.to_string_lossy().into_owned();
        let seq = journal
            .record(Entry::Remote {
                host: host.spec.clone(),
                undo: RemoteUndo::Mount { path: path.clone() },
            })
            .map_err(|e| format!("{e:#}"))?;
        let mut cmd = host.command(&format!(
            "exec {} disk-layer {} {}",
            quote(bin),
            quote(&backing.to_string_lossy()),
            quote(&path)
        ));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                journal.done(seq);
                return Err(format!("host {name}: running ssh: {e}"));
            }
        };
        let session = Session {
            stdin: child.stdin.take().expect("stdin is piped"),
            out: BufReader::new(child.stdout.take().expect("stdout is piped")),
            child,
        };
        let me = Self {
            host: name,
            mountpoint: path,
            session: Mutex::new(Some(session)),
            journal,
            seq,
        };
        match me.read_reply() {
            Ok(_) => Ok(me),
            // Dropping `me` ends the session; the helper mounted nothing
            // or unmounts on EOF.
            Err(e) => Err(format!("mounting the disk layer at {}: {e}", me.mountpoint)),
        }
    }

    /// The helper's next line, as a reply; its error, or the session's end
    /// with the helper's stderr.
    fn read_reply(&self) -> Result<Reply, String> {
        let mut guard = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let s = guard.as_mut().ok_or("the disk layer is unmounted")?;
        Self::reply_of(&self.host, s)
    }

    fn reply_of(host: &str, s: &mut Session) -> Result<Reply, String> {
        let mut line = String::new();
        match s.out.read_line(&mut line) {
            Ok(n) if n > 0 => {
                let r: Reply = serde_json::from_str(&line).map_err(|e| {
                    format!(
                        "host {host}: the disk-layer helper said {:?}: {e}",
                        line.trim()
                    )
                })?;
                match r.error {
                    Some(e) => Err(format!("host {host}: {e}")),
                    None => Ok(r),
                }
            }
            _ => {
                let status = s.child.wait();
                let mut err = String::new();
                if let Some(mut e) = s.child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                Err(format!(
                    "host {host}: the disk-layer helper ended ({}){}",
                    status.map_or_else(|e| e.to_string(), |s| s.to_string()),
                    if err.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", err.trim())
                    }
                ))
            }
        }
    }

    /// Send `req` and read the answer (blocking: one round trip over the
    /// open session).
    fn call(&self, req: &Request) -> Result<Reply, String> {
        let mut guard = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let s = guard.as_mut().ok_or("the disk layer is unmounted")?;
        let line = serde_json::to_string(req).map_err(|e| e.to_string())?;
        writeln!(s.stdin, "{line}")
            .and_then(|()| s.stdin.flush())
            .map_err(|e| format!("host {}: writing to the disk-layer helper: {e}", self.host))?;
        Self::reply_of(&self.host, s)
    }

    pub fn counts(&self) -> Result<Counts, String> {
        self.call(&Request::Counts).map(|r| r.counts)
    }

    pub fn set_fault(&self, fault: DiskFault) -> Result<(), String> {
        self.call(&Request::Set { fault }).map(drop)
    }

    pub fn clear_fault(&self, fault: DiskFault) -> Result<Option<u64>, String> {
        self.call(&Request::Clear { fault }).map(|r| r.released)
    }

    pub fn power_cut(&self) -> Result<(), String> {
        self.call(&Request::PowerCut).map(drop)
    }

    /// SIGKILL the node's process group `pgid` there, by the helper.
    pub fn kill(&self, pgid: i32) -> Result<(), String> {
        self.call(&Request::Kill { pgid }).map(drop)
    }

    /// Unmount there and end the session; the journal entry is done once
    /// the helper says it unmounted. Idempotent.
    pub fn unmount(&self) -> Result<(), String> {
        let r = match self.call(&Request::Unmount) {
            Err(e) if e == "the disk layer is unmounted" => return Ok(()),
            r => r,
        };
        self.finish();
        r.map(|_| self.journal.done(self.seq))
    }

    /// Close the helper's stdin (it unmounts on EOF) and reap the session.
    fn finish(&self) {
        if let Some(s) = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let Session {
                mut child, stdin, ..
            } = s;
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for RemoteDisk {
    /// A cycle dropped mid-way: the helper unmounts on EOF. The entry stays
    /// journaled unless the helper was already told to unmount, so the
    /// run's end (or `cleanup`) checks the host.
    fn drop(&mut self) {
        self.finish();
    }
}

/// Why this host cannot carry a disk layer, if it cannot, checked by a
/// shell before anything is written: as [`crate::disk::available`] checks
/// locally, root and a /dev/fuse it can open read-write.
pub fn preflight(host: &Host) -> Result<(), String> {
    let out = host.run(
        "if [ \"$(id -u)\" != 0 ]; then echo \"the SSH user $(id -un) is not root (mounting the FUSE layer needs root)\"; \
         elif [ ! -c /dev/fuse ]; then echo 'there is no /dev/fuse (load the fuse module: modprobe fuse; in a container, give it --device /dev/fuse)'; \
         elif ! (exec 3<>/dev/fuse) 2>/dev/null; then echo '/dev/fuse cannot be opened read-write (load the fuse module: modprobe fuse)'; fi",
    )?;
    match out.trim() {
        "" => Ok(()),
        why => Err(format!("host {}: {why}", host.spec.name)),
    }
}
/// Why some host cannot carry a disk layer (not root, no /dev/fuse),
/// every such host named; checked before anything is written.
pub async fn preflight_all(hosts: &Hosts) -> Result<(), String> {
    let runs = hosts.hosts.iter().map(|h| {
        let h = h.clone();
        tokio::task::spawn_blocking(move || preflight(&h))
    });
    let why: Vec<String> = futures::future::join_all(runs)
        .await
        .into_iter()
        .filter_map(|r| r.map_err(|e| e.to_string()).and_then(|r| r).err())
        .collect();
    if why.is_empty() {
        Ok(())
    } else {
        Err(why.join("; "))
    }
}
