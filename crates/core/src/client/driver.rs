//! Driver processes: the client contract spoken as JSON lines to a child
//! process, one per client process (Jepsen's model: one operation in
//! flight each), so an official driver in any language can carry a
//! cycle's operations.
//!
//! Not sandboxed: a driver is a program the campaign names, run with the
//! engine's rights, as native plugins are. The host holds it to the
//! protocol: an operation unanswered within `client.timeout_ms` is `info`
//! and its process is retired (killed; the next operation starts a fresh
//! one); a driver that exits, or answers anything but a reply to the
//! operation asked, is retired the same way, and the cycle names it with
//! its stderr tail. Each driver runs in its own process group with
//! PR_SET_PDEATHSIG, journaled, so neither a cycle's end nor a SIGKILLed
//! engine leaves one running.

use super::NoReply;
use super::slots::{Problems, Slots};
use chaos_journal::journal::{Entry, Journal};
use chaos_model::client::{Op, Reply, Request};
use chaos_model::template::Vars;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Lines of a driver's stderr quoted with a problem.
const STDERR_TAIL: usize = 10;
/// Longest reply line read; a longer one is garbage (a read of 100,000
/// ids of 40 bytes fits).
const MAX_LINE: usize = 8 << 20;

/// What the driver processes of one cycle share.
pub struct Drivers {
    program: PathBuf,
    args: Vec<String>,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    timeout: Duration,
    namespace: String,
    cycle: u32,
    /// `CHAOS_NODES`: each node's client address, by index.
    nodes: String,
    /// Where each process's stderr goes (`client-<process>.log`).
    dir: PathBuf,
    journal: Arc<Journal>,
    seq: AtomicU64,
    procs: Slots<Proc>,
    problems: Problems,
}

/// One running driver.
struct Proc {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    journal_seq: Option<u64>,
}

pub struct Spec<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    /// Where the driver runs (the campaign file's directory).
    pub cwd: &'a Path,
    pub section: &'a chaos_model::client::ClientSection,
    pub namespace: &'a str,
    pub cycle: u32,
    pub nodes: &'a [std::net::SocketAddr],
    pub dir: &'a Path,
    pub journal: Arc<Journal>,
}

impl Drivers {
    pub fn new(s: Spec<'_>) -> Self {
        Self {
            // Absolute: a relative path would be taken from the driver's
            // own directory once it is set.
            program: if s.program.components().count() > 1 {
                std::path::absolute(s.program).unwrap_or_else(|_| s.program.to_path_buf())
            } else {
                s.program.to_path_buf()
            },
            args: s.args.to_vec(),
            cwd: std::path::absolute(s.cwd).unwrap_or_else(|_| s.cwd.to_path_buf()),
            env: s
                .section
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            timeout: Duration::from_millis(s.section.timeout_ms),
            namespace: s.namespace.to_string(),
            cycle: s.cycle,
            nodes: s
                .nodes
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(","),
            dir: s.dir.to_path_buf(),
            journal: s.journal,
            seq: AtomicU64::new(1),
            procs: Slots::default(),
            problems: Problems::default(),
        }
    }

    /// Ask `process`'s driver `op` and wait for its reply.
    pub async fn call(&self, process: u32, op: Op) -> Result<Reply, NoReply> {
        let mut slot = self.procs.lock(process).await;
        // Out of the slot while the exchange runs: a caller that gives up
        // mid-exchange (its own timeout) drops the process with the guard,
        // killed, instead of leaving its unread reply for the next call.
        let proc = match slot.take() {
            Some(p) => p,
            None => self.spawn(process).map_err(|e| {
                let e = format!("client process {process}: {e}");
                self.problem(e.clone());
                NoReply::Start(e)
            })?,
        };
        let mut held = Held {
            drivers: self,
            proc: Some(proc),
        };
        let request = Request {
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            op,
        };
        let proc = held.proc.as_mut().expect("held above");
        let exchange = tokio::time::timeout(self.timeout, exchange(proc, &request)).await;
        let (why, timed_out) = match exchange {
            Ok(Ok(line)) => match Reply::parse(&line, &request) {
                Ok(mut reply) => {
                    *slot = held.proc.take();
                    // A driver's text is shown, never interpreted.
                    reply.error = reply.error.map(chaos_plugin::clip);
                    return Ok(reply);
                }
                Err(e) => (e, false),
            },
            Ok(Err(e)) => (e, false),
            Err(_) => (
                format!(
                    "no answer within client.timeout_ms = {}",
                    self.timeout.as_millis()
                ),
                true,
            ),
        };
        let mut proc = held.proc.take().expect("held above");
        let exit = self.retire(&mut proc).await;
        if timed_out {
            // The system's slowness, not the driver's fault: no problem.
            return Err(NoReply::Timeout(format!(
                "client process {process} ({} {}): {why}; retired",
                request.op.name(),
                request.seq
            )));
        }
        let e = format!(
            "client process {process} ({} {}): {why}; {exit}, retired{}",
            request.op.name(),
            request.seq,
            self.stderr_tail(process)
        );
        self.problem(e.clone());
        Err(NoReply::Broken(e))
    }

    fn spawn(&self, process: u32) -> anyhow::Result<Proc> {
        use anyhow::Context;
        let vars = Vars::default()
            .with("namespace", self.namespace.as_str())
            .with("cycle", self.cycle.to_string())
            .with("process", process.to_string());
        let log = self.dir.join(format!("client-{process}.log"));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(&self.program);
        cmd.args(self.args.iter().map(|a| vars.render(a)))
            .current_dir(&self.cwd)
            .envs(self.env.iter().map(|(k, v)| (k, vars.render(v))))
            .env("CHAOS_NODES", &self.nodes)
            .env("CHAOS_NAMESPACE", &self.namespace)
            .env("CHAOS_CYCLE", self.cycle.to_string())
            .env("CHAOS_PROCESS", process.to_string())
            // So a driver can give up on the system before the host gives
            // up on the driver.
            .env("CHAOS_TIMEOUT_MS", self.timeout.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: the closure runs in the forked child before exec and only
        // makes an async-signal-safe syscall (prctl).
        unsafe {
            cmd.pre_exec(|| {
                // If chaos-host dies, its drivers die with it.
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "client.command: starting the driver {}",
                self.program.display()
            )
        })?;
        let pid = child.id().context("spawned driver has no pid")? as i32;
        let journal_seq = self
            .journal
            .record(Entry::Group {
                pgid: pid,
                start: chaos_journal::journal::start_time(nix::unistd::Pid::from_raw(pid))
                    .unwrap_or(0),
            })
            .ok();
        let stdin = child.stdin.take().context("driver stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("driver stdout")?);
        Ok(Proc {
            child,
            stdin,
            stdout,
            journal_seq,
        })
    }

    /// Kill `proc`'s group and reap it; says how it ended.
    async fn retire(&self, proc: &mut Proc) -> String {
        let exited = proc.child.try_wait().ok().flatten();
        kill(proc);
        // Bounded: a driver that left its group (setsid) is still killed
        // by kill_on_drop when the child is dropped.
        let _ = tokio::time::timeout(REAP, proc.child.wait()).await;
        if let Some(seq) = proc.journal_seq.take() {
            self.journal.done(seq);
        }
        match exited {
            Some(status) => format!("the driver had exited ({status})"),
            None => "the driver was killed".into(),
        }
    }

    /// End every driver: its group is killed and reaped (whatever it
    /// started with it goes too).
    pub async fn close(&self) {
        for mut proc in self.procs.drain().await {
            self.retire(&mut proc).await;
        }
    }

    fn problem(&self, e: String) {
        self.problems.add(e);
    }

    /// What went wrong with the drivers this cycle (none when all went well).
    pub fn problems(&self) -> Vec<String> {
        self.problems.list()
    }

    fn stderr_tail(&self, process: u32) -> String {
        let log = self.dir.join(format!("client-{process}.log"));
        let lines = chaos_lifecycle::last_lines(&log, STDERR_TAIL);
        if lines.is_empty() {
            return String::new();
        }
        format!("; its stderr ends:\n  {}", lines.join("\n  "))
    }
}

/// How long a retired driver is waited for once killed.
const REAP: std::time::Duration = std::time::Duration::from_secs(2);

/// SIGKILL to the driver's group and to the driver itself (which may have
/// left the group).
fn kill(proc: &mut Proc) {
    if let Some(pid) = proc.child.id() {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = proc.child.start_kill();
}

/// A process taken out of its slot for one exchange; killed if the
/// exchange is abandoned before it is put back.
struct Held<'a> {
    drivers: &'a Drivers,
    proc: Option<Proc>,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            kill(&mut p);
            if let Some(seq) = p.journal_seq.take() {
                self.drivers.journal.done(seq);
            }
        }
    }
}

/// Send one request line and read one reply line.
async fn exchange(proc: &mut Proc, request: &Request) -> Result<String, String> {
    let mut line = serde_json::to_vec(request).map_err(|e| e.to_string())?;
    line.push(b'\n');
    proc.stdin
        .write_all(&line)
        .await
        .map_err(|e| format!("writing the operation to the driver: {e}"))?;
    proc.stdin
        .flush()
        .await
        .map_err(|e| format!("writing the operation to the driver: {e}"))?;
    let mut buf = Vec::new();
    let n = (&mut proc.stdout)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await
        .map_err(|e| format!("reading the driver's answer: {e}"))?;
    if n == 0 {
        return Err("the driver closed its stdout without answering".into());
    }
    if n > MAX_LINE {
        return Err(format!("answered a line longer than {MAX_LINE} bytes"));
    }
    String::from_utf8(buf).map_err(|_| "answered a line that is not UTF-8".into())
}
