//! One node process: spawned in its own process group, killed as a group.

use crate::campaign::{Campaign, Vars};
use crate::journal::{Entry, Journal, start_time};
use crate::procfs::group_members;
use anyhow::Context;
use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Instant;
use tokio::process::Command;
use tokio::sync::watch;

pub struct Node {
    pub index: u32,
    /// Where chaos-host reaches the node on loopback.
    pub port: u16,
    /// Pid of the node's process, which leads its process group.
    pub pid: Pid,
    pub log_path: PathBuf,
    /// Set once by the node's reaper task, the moment the leader exits:
    /// the exit is seen (and timed) whoever asked for it, so a node that
    /// dies unasked is a finding with its time, not a silent gap.
    exit: watch::Receiver<Option<Exit>>,
    journal: Arc<Journal>,
    journal_seq: Option<u64>,
}

/// How and when a node's leader process ended.
#[derive(Clone, Copy, Debug)]
pub struct Exit {
    pub status: ExitStatus,
    pub at: Instant,
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
}

impl Node {
    pub fn spawn(campaign: &Campaign, s: Spawn<'_>) -> anyhow::Result<Self> {
        let sys = &campaign.file.system;
        let index = s.index;
        let log = std::fs::File::create(s.log_path)
            .with_context(|| format!("creating {}", s.log_path.display()))?;
        let (program, args) = &campaign.commands[index as usize];
        let mut cmd = Command::new(program);
        cmd.args(args.iter().map(|a| s.vars.render(a)))
            .envs(sys.env.iter().map(|(k, v)| (k, s.vars.render(v))))
            .envs(s.env)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        let netns = s.netns.map(|fd| fd.as_raw_fd());
        unsafe {
            cmd.pre_exec(move || {
                // If chaos-host dies, its nodes die with it rather than linger.
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
                if let Some(fd) = netns {
                    // The fd stays open in the parent until spawn returns.
                    let fd = BorrowedFd::borrow_raw(fd);
                    setns(fd, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "system.command: starting node {index} with {}",
                program.display()
            )
        })?;
        let pid = Pid::from_raw(child.id().context("spawned node has no pid")? as i32);
        // Journaled right after spawn (the pid is not known before); until
        // then pdeathsig covers a chaos-host that dies.
        let journal_seq = s
            .journal
            .record(Entry::Group {
                pgid: pid.as_raw(),
                start: start_time(pid).unwrap_or(0),
            })
            .ok();
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
            tx.send_replace(Some(Exit {
                status,
                at: Instant::now(),
            }));
        });
        Ok(Self {
            index,
            port: s.port,
            pid,
            log_path: s.log_path.to_path_buf(),
            exit,
            journal: s.journal,
            journal_seq,
        })
    }

    /// Signal the node's whole process group. Once the leader is reaped
    /// its id may be handed out again, unless members of the group remain:
    /// then the group is only signalled while it still has members.
    pub fn signal(&self, sig: Signal) -> nix::Result<()> {
        let reaped = self.exit.borrow().is_some();
        if reaped && group_members(self.pid.as_raw()).is_empty() {
            return Err(nix::errno::Errno::ESRCH);
        }
        killpg(self.pid, sig)
    }

    /// The exit status, if the node has exited (and been reaped).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.exit().map(|e| e.status)
    }

    /// How and when the node exited, if it has.
    pub fn exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }

    pub fn alive(&self) -> bool {
        self.exit().is_none()
    }

    /// Wait for the node to exit (its reaper reaps it).
    pub async fn reap(&self) -> std::io::Result<ExitStatus> {
        let mut rx = self.exit.clone();
        let exit = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| std::io::Error::other("the node's reaper is gone"))?;
        Ok(exit.expect("waited for Some").status)
    }

    /// SIGKILL the process group and reap the leader.
    pub async fn kill_and_reap(&self) {
        // ESRCH means the group is already gone; nothing else can fail here.
        let _ = self.signal(Signal::SIGKILL);
        let _ = self.reap().await;
        // The leader is reaped; members of its group died with the SIGKILL.
        if let Some(seq) = self.journal_seq {
            self.journal.done(seq);
        }
    }

    /// The last `lines` lines of the node's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
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
