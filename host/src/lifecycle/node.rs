//! One node process: spawned in its own process group, killed as a group.

use crate::campaign::{Campaign, Vars};
use anyhow::Context;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use tokio::process::{Child, Command};

pub struct Node {
    pub index: u32,
    pub port: u16,
    /// Pid of the node's process, which leads its process group.
    pub pid: Pid,
    pub log_path: PathBuf,
    child: tokio::sync::Mutex<Child>,
    exit: Mutex<Option<ExitStatus>>,
}

impl Node {
    pub fn spawn(
        campaign: &Campaign,
        index: u32,
        port: u16,
        vars: &Vars,
        log_path: &Path,
    ) -> anyhow::Result<Self> {
        let sys = &campaign.file.system;
        let log = std::fs::File::create(log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut cmd = Command::new(&campaign.program);
        cmd.args(sys.command[1..].iter().map(|a| vars.render(a)))
            .envs(sys.env.iter().map(|(k, v)| (k, vars.render(v))))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        // If chaos-host dies, its nodes die with it rather than linger.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().with_context(|| {
            format!(
                "system.command: starting node {index} with {}",
                campaign.program.display()
            )
        })?;
        let pid = Pid::from_raw(child.id().context("spawned node has no pid")? as i32);
        Ok(Self {
            index,
            port,
            pid,
            log_path: log_path.to_path_buf(),
            child: tokio::sync::Mutex::new(child),
            exit: Mutex::new(None),
        })
    }

    /// Signal the node's whole process group.
    pub fn signal(&self, sig: Signal) -> nix::Result<()> {
        killpg(self.pid, sig)
    }

    /// The exit status, if the node has exited (reaping it if needed).
    pub fn exit_status(&self) -> Option<ExitStatus> {
        if let Some(s) = *self.exit.lock().unwrap_or_else(|e| e.into_inner()) {
            return Some(s);
        }
        let mut child = self.child.try_lock().ok()?;
        let status = child.try_wait().ok().flatten()?;
        *self.exit.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
        Some(status)
    }

    pub fn alive(&self) -> bool {
        self.exit_status().is_none()
    }

    /// Wait for the node to exit and reap it.
    pub async fn reap(&self) -> std::io::Result<ExitStatus> {
        let status = self.child.lock().await.wait().await?;
        *self.exit.lock().unwrap_or_else(|e| e.into_inner()) = Some(status);
        Ok(status)
    }

    /// SIGKILL the process group and reap the leader.
    pub async fn kill_and_reap(&self) {
        // ESRCH means the group is already gone; nothing else can fail here.
        let _ = self.signal(Signal::SIGKILL);
        let _ = self.reap().await;
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
