//! One node: its process (spawned in its own process group, killed as a
//! group) and what it takes to start it again. A restart replaces the
//! process and keeps everything else (index, ports, data dir, command,
//! log), so every holder of the `Arc<Node>` sees the new process.

mod ready;

pub use ready::ClientReady;

use anyhow::Context;
use chaos_journal::journal::{Entry, Journal, start_time};
use chaos_journal::procfs::group_members;
use chaos_model::campaign::{Campaign, Vars};
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::Command;
use tokio::sync::watch;

/// How long a remote node's ssh session has to end after its group was
/// killed before the session itself is killed.
const REMOTE_REAP_DEADLINE: Duration = Duration::from_secs(3);

pub struct Node {
    pub index: u32,
    /// Where chaos-host reaches the node on loopback.
    pub port: u16,
    /// Where chaos-host reaches the node: 127.0.0.1:`port`, or the remote
    /// host's address.
    pub client: std::net::SocketAddr,
    pub log_path: PathBuf,
    /// How to start the node (again).
    launch: Launch,
    /// The current process; replaced by a restart.
    process: Mutex<Process>,
    journal: Arc<Journal>,
}

/// Everything a start needs, rendered once for the cycle.
struct Launch {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The node's network namespace, held open so a restart enters it too.
    netns: Option<OwnedFd>,
    /// The readiness probe and its deadline (`[ready]`): the rendered
    /// url, or (without one) the client's `ready`, set once the cycle's
    /// client exists.
    ready_url: Option<String>,
    client_ready: std::sync::OnceLock<Arc<dyn ready::ClientReady>>,
    ready_deadline: Duration,
    /// The remote host the node runs on, and its data dir there.
    remote: Option<(Arc<chaos_ssh::Host>, PathBuf)>,
}

/// One process of the node.
#[derive(Clone)]
struct Process {
    /// Leads its process group (on a remote host: the remote one).
    pid: Pid,
    /// The local process the reaper waits for: `pid` itself, or the `ssh`
    /// session the remote node runs under.
    local: Pid,
    started: Instant,
    /// Set once by the process's reaper task, the moment the leader exits:
    /// the exit is seen (and timed) whoever asked for it, so a node that
    /// dies unasked is a finding with its time, not a silent gap.
    exit: watch::Receiver<Option<Exit>>,
    journal_seq: Option<u64>,
    /// The remote leader's start time (clock ticks), 0 for local nodes.
    remote_start: u64,
    /// 0 for the cycle's first process, n after the n-th restart.
    generation: u32,
}

/// How and when a node's leader process ended.
#[derive(Clone, Copy, Debug)]
pub struct Exit {
    pub status: ExitStatus,
    pub at: Instant,
    /// A remote node's SSH session ended without its status (host
    /// unreachable, sshd stopped): the node is lost to chaos-host.
    pub ssh_lost: bool,
}

impl Exit {
    pub fn describe(&self) -> String {
        if self.ssh_lost {
            "lost: its SSH session ended without an exit status (the host dropped, or its sshd stopped)".into()
        } else {
            Node::describe_exit(self.status)
        }
    }
}

/// How to start one node.
pub struct Spawn<'a> {
    pub index: u32,
    pub port: u16,
    pub vars: &'a Vars<'a>,
    pub log_path: &'a Path,
    /// The network namespace to start it in.
    pub netns: Option<BorrowedFd<'a>>,
    /// Environment added by the host (e.g. libfaketime).
    pub env: Vec<(String, String)>,
    pub journal: Arc<Journal>,
    /// The rendered `ready.url`, if the campaign has one.
    pub ready_url: Option<String>,
    pub client: std::net::SocketAddr,
    /// The remote host to run on, and the node's data dir there.
    pub remote: Option<(Arc<chaos_ssh::Host>, PathBuf)>,
}

impl Node {
    pub fn spawn(campaign: &Campaign, s: Spawn<'_>) -> anyhow::Result<Self> {
        let sys = &campaign.file.system;
        let index = s.index;
        let (program, args) = &campaign.commands[index as usize];
        let mut env: Vec<(String, String)> = sys
            .env
            .iter()
            .map(|(k, v)| (k.clone(), s.vars.render(v)))
            .collect();
        env.extend(s.env);
        let netns = s
            .netns
            .map(|fd| fd.try_clone_to_owned())
            .transpose()
            .context("keeping the node's network namespace open")?;
        let launch = Launch {
            program: program.clone(),
            args: args.iter().map(|a| s.vars.render(a)).collect(),
            env,
            netns,
            ready_url: s.ready_url,
            client_ready: std::sync::OnceLock::new(),
            ready_deadline: Duration::from_millis(campaign.file.ready.deadline_ms),
            remote: s.remote,
        };
        let log = std::fs::File::create(s.log_path)
            .with_context(|| format!("creating {}", s.log_path.display()))?;
        let process = launch.start(index, log, &s.journal, 0)?;
        Ok(Self {
            index,
            port: s.port,
            client: s.client,
            log_path: s.log_path.to_path_buf(),
            launch,
            process: Mutex::new(process),
            journal: s.journal,
        })
    }

    fn process(&self) -> Process {
        self.process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Pid of the node's current process, which leads its process group.
    pub fn pid(&self) -> Pid {
        self.process().pid
    }

    /// When the current process started, and how many restarts came before
    /// it.
    pub fn started(&self) -> (Instant, u32) {
        let p = self.process();
        (p.started, p.generation)
    }

    /// Start the node again, with the same command, data dir, ports and
    /// environment, once its current process has exited. The log is
    /// appended to, after a marker line.
    pub fn restart(&self) -> anyhow::Result<Pid> {
        let old = self.process();
        anyhow::ensure!(
            old.exit.borrow().is_some(),
            "node {} is still running (pid {}); it must be down to start again",
            self.index,
            old.pid
        );
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        writeln!(
            log,
            "--- chaos-host: restarting node {} (after pid {}) ---",
            self.index, old.pid
        )?;
        let new = self
            .launch
            .start(self.index, log, &self.journal, old.generation + 1)?;
        let pid = new.pid;
        *self.process.lock().unwrap_or_else(|e| e.into_inner()) = new;
        Ok(pid)
    }

    /// Wait until the node answers its readiness probe (`[ready]`), exits,
    /// or the deadline passes.
    pub async fn wait_ready(self: &Arc<Self>, http: &reqwest::Client) -> anyhow::Result<()> {
        let probe = match (&self.launch.ready_url, self.launch.client_ready.get()) {
            (Some(url), _) => ready::Probe::Url(url.clone()),
            (None, Some(c)) => ready::Probe::Client(c.clone()),
            (None, None) => anyhow::bail!(
                "node {}: no readiness probe: the campaign has no [ready] url and its client was not set up yet",
                self.index
            ),
        };
        ready::wait(http, self.clone(), probe, self.launch.ready_deadline).await
    }

    /// Ask the client whether the node is ready, for a campaign without
    /// `[ready] url` (set once; later calls keep the first).
    pub fn set_client_ready(&self, c: Arc<dyn ready::ClientReady>) {
        let _ = self.launch.client_ready.set(c);
    }

    /// Signal the node's whole process group. Once the leader is reaped
    /// its id may be handed out again, unless members of the group remain:
    /// then the group is only signalled while it still has members.
    pub fn signal(&self, sig: Signal) -> nix::Result<()> {
        let p = self.process();
        if let Some((host, _)) = &self.launch.remote {
            // The local ssh session ends when the remote group's leader
            // does; past that, the group is gone with it (no members
            // outlive a SIGKILL of the group, the only signal sent then).
            if p.exit.borrow().is_some() {
                return Err(nix::errno::Errno::ESRCH);
            }
            return host.killpg(p.pid.as_raw(), sig).map_err(|e| {
                tracing::warn!("node {}: {e}", self.index);
                if e.contains("No such process") {
                    nix::errno::Errno::ESRCH
                } else {
                    nix::errno::Errno::EHOSTUNREACH
                }
            });
        }
        let reaped = p.exit.borrow().is_some();
        if reaped && group_members(p.pid.as_raw()).is_empty() {
            return Err(nix::errno::Errno::ESRCH);
        }
        killpg(p.pid, sig)
    }

    /// The exit status, if the node has exited (and been reaped).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit().map(|e| e.status)
    }

    /// How and when the node's current process exited, if it has.
    pub fn exit(&self) -> Option<Exit> {
        *self.process().exit.borrow()
    }

    pub fn alive(&self) -> bool {
        self.exit().is_none()
    }

    /// Wait for the current process to exit (its reaper reaps it).
    pub async fn reap(&self) -> std::io::Result<ExitStatus> {
        let mut rx = self.process().exit;
        let exit = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| std::io::Error::other("the node's reaper is gone"))?;
        Ok(exit.expect("waited for Some").status)
    }

    /// The scheduler state letter of the node's leader (R, S, T, ...),
    /// read where it runs.
    pub fn state(&self) -> Option<char> {
        match &self.launch.remote {
            Some((host, _)) => host.state(self.pid().as_raw()),
            None => chaos_journal::procfs::state(self.pid()),
        }
    }

    /// The remote host the node runs on, if any.
    pub fn remote_host(&self) -> Option<&Arc<chaos_ssh::Host>> {
        self.launch.remote.as_ref().map(|(h, _)| h)
    }

    /// The journal entry that continues the leader should chaos-host die
    /// while it is stopped.
    pub fn stopped_entry(&self) -> Entry {
        let pid = self.pid();
        match &self.launch.remote {
            Some((host, _)) => Entry::Remote {
                host: host.spec.clone(),
                undo: chaos_journal::journal::RemoteUndo::Stopped {
                    pid: pid.as_raw(),
                    start: self.process().remote_start,
                },
            },
            None => Entry::Stopped {
                pid: pid.as_raw(),
                start: start_time(pid).unwrap_or(0),
            },
        }
    }

    /// SIGKILL the process group and reap the leader.
    pub async fn kill_and_reap(&self) {
        // ESRCH means the group is already gone; nothing else can fail here.
        let sent = self.signal(Signal::SIGKILL);
        self.reap_killed(sent).await;
    }

    /// Reap the leader of a group just sent SIGKILL (`sent`: how sending
    /// it went). Apart from [`Node::kill_and_reap`] so a caller that sent
    /// the kill itself does not send it again: on a remote host that is
    /// one more SSH session (~150 ms under load), which staggered the
    /// "simultaneous" kills of a power failure.
    pub async fn reap_killed(&self, sent: nix::Result<()>) {
        if self.launch.remote.is_some() {
            // A session whose host dropped may never end on its own.
            if tokio::time::timeout(REMOTE_REAP_DEADLINE, self.reap())
                .await
                .is_err()
            {
                let _ = killpg(self.process().local, Signal::SIGKILL);
            }
        }
        let _ = self.reap().await;
        // The leader is reaped; members of its group died with the SIGKILL.
        // A remote group chaos-host could not reach stays journaled, for
        // `cleanup`.
        if sent != Err(nix::errno::Errno::EHOSTUNREACH)
            && let Some(seq) = self.process().journal_seq
        {
            self.journal.done(seq);
        }
    }

    /// The last `lines` lines of the node's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let tail = last_lines(&self.log_path, lines).join("\n");
        if tail.is_empty() {
            "(log is empty)".into()
        } else {
            tail
        }
    }

    pub fn describe_exit(status: ExitStatus) -> String {
        match (status.code(), status.signal()) {
            (Some(c), _) => format!("exited with status {c}"),
            (_, Some(s)) => format!(
                "killed by {}",
                Signal::try_from(s)
                    .map(|s| s.as_str())
                    .unwrap_or("a signal")
            ),
            _ => "exited".into(),
        }
    }
}

impl Launch {
    /// Start one process of node `index`, output to `log`, journaled, with
    /// a reaper task.
    fn start(
        &self,
        index: u32,
        log: std::fs::File,
        journal: &Journal,
        generation: u32,
    ) -> anyhow::Result<Process> {
        let pid_file = self.remote.as_ref().map(|(_, dir)| {
            dir.with_file_name(format!(
                "{}.{generation}.pid",
                dir.file_name().unwrap_or_default().to_string_lossy()
            ))
        });
        let mut cmd = match (&self.remote, &pid_file) {
            (Some((host, dir)), Some(pid_file)) => {
                Command::from(host.command(&chaos_ssh::Host::launch_script(
                    &self.program,
                    &self.args,
                    &self.env,
                    dir,
                    pid_file,
                )))
            }
            _ => {
                let mut cmd = Command::new(&self.program);
                cmd.args(&self.args)
                    .envs(self.env.iter().map(|(k, v)| (k, v)));
                cmd
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        let netns = self.netns.as_ref().map(|fd| fd.as_fd().as_raw_fd());
        // SAFETY: the closure runs in the forked child before exec and only
        // makes async-signal-safe syscalls (prctl, setns); `netns` is a raw
        // fd the parent keeps open (in `Launch`) until after the spawn.
        unsafe {
            cmd.pre_exec(move || {
                // If chaos-host dies, its nodes die with it rather than linger.
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
                if let Some(fd) = netns {
                    let fd = BorrowedFd::borrow_raw(fd);
                    setns(fd, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "system.command: starting node {index} with {}",
                self.program.display()
            )
        })?;
        let started = Instant::now();
        let local = Pid::from_raw(child.id().context("spawned node has no pid")? as i32);
        let (pid, remote_start, entry) = match (&self.remote, &pid_file) {
            (Some((host, _)), Some(pid_file)) => {
                // block_in_place: no await point, so a cancelled start leaves no node unjournaled.
                let read = tokio::task::block_in_place(|| host.read_pid(pid_file));
                let (pid, start) = match read {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = child.start_kill();
                        anyhow::bail!("node {index} on host {}: starting it: {e}", host.spec.name);
                    }
                };
                let entry = Entry::Remote {
                    host: host.spec.clone(),
                    undo: chaos_journal::journal::RemoteUndo::Group { pgid: pid, start },
                };
                (Pid::from_raw(pid), start, entry)
            }
            _ => (
                local,
                0,
                Entry::Group {
                    pgid: local.as_raw(),
                    start: start_time(local).unwrap_or(0),
                },
            ),
        };
        // Journaled right after spawn (the pid is not known before); until
        // then pdeathsig covers a chaos-host that dies (locally; a remote
        // node lives on until `cleanup` or the next run kills its group).
        let journal_seq = journal.record(entry).ok();
        let remote = self.remote.is_some();
        // The reaper owns the child: it waits for the exit and stamps it.
        // Dropping the task (runtime shut down) drops the child, which
        // kills it (`kill_on_drop`).
        let (tx, exit) = watch::channel(None);
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("waiting for node {index} (pid {pid}): {e}");
                    ExitStatus::from_raw(0xff00)
                }
            };
            // Over ssh the remote shell reports a signal death as 128 + n;
            // 255 is ssh's own failure.
            let (status, ssh_lost) = match status.code() {
                Some(255) if remote => (status, true),
                Some(c) if remote && (129..=192).contains(&c) => {
                    (ExitStatus::from_raw(c - 128), false)
                }
                _ => (status, false),
            };
            tx.send_replace(Some(Exit {
                status,
                at: Instant::now(),
                ssh_lost,
            }));
        });
        Ok(Process {
            pid,
            local,
            remote_start,
            started,
            exit,
            journal_seq,
            generation,
        })
    }
}

/// The last `n` lines of the log at `path` (none when it is missing or
/// empty): a node's output, a driver's stderr.
pub fn last_lines(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}
