//! One connected host: its SSH master and the commands chaos-host runs
//! over it (blocking, a few ms each over the master), plus the plain `ssh`
//! the journal's undo uses when no master is open.

use anyhow::bail;
use chaos_model::hosts::HostSpec;
use nix::sys::signal::Signal;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// How long opening a connection may take before the host counts as
/// unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Host {
    pub spec: HostSpec,
    pub ip: IpAddr,
    /// Owns the master (closed, and its control socket removed, on drop).
    session: openssh::Session,
    /// The chaos-host binary uploaded for clock leases and disk layers,
    /// once asked for: its path there, or why it cannot be used.
    helper: Mutex<Option<Result<String, String>>>,
    /// This run's directory there (see [`Host::run_dir`]) and its journal
    /// entry, once made; removed at the end.
    dir: Mutex<Option<(String, u64)>>,
}

/// Where uploads go: `/tmp/chaos-host-RUN-HOST`.
const HELPER_PREFIX: &str = "/tmp/chaos-host-";

/// `path` is a directory chaos-host names for its uploads (the journal's
/// undo removes nothing else).
pub fn is_helper_dir(path: &str) -> bool {
    path.strip_prefix(HELPER_PREFIX).is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            && !rest.contains("..")
    })
}

/// `script` made safe against outliving its run: it runs under the lock
/// of run directory `dir` and only if `dir` still stands and no undo has
/// fenced `name` off there ([`fence`]); else it exits 75 having done
/// nothing. A command sent over the master keeps running on the host when
/// chaos-host is SIGKILLed mid-call, and could finish after `cleanup` undid
/// what it makes (a firewall table installed after it was deleted). The
/// heredoc or stdin of the command reaches `script`.
pub fn fenced(dir: &str, name: &str, script: &str) -> String {
    let (d, f) = (quote(dir), quote(&format!("{dir}/{name}.fenced")));
    let inner = format!(
        "[ -d {d} ] && [ ! -e {f} ] || {{ echo 'fenced off: the run was cleaned up' >&2; exit 75; }}; {script}"
    );
    format!(
        "flock {} sh -c {}",
        quote(&format!("{dir}/.lock")),
        quote(&inner)
    )
}

/// The shell that fences `name` off in run directory `dir` (when it still
/// stands) before `undo`: a [`fenced`] command holding the lock finishes
/// first, and one that has not yet taken it will do nothing.
pub fn fence(dir: &str, name: &str, undo: &str) -> String {
    let (d, l, f) = (
        quote(dir),
        quote(&format!("{dir}/.lock")),
        quote(&format!("{dir}/{name}.fenced")),
    );
    format!("if [ -d {d} ]; then flock {l} touch {f}; fi; {undo}")
}

/// SHA-256 (hex) and size of a local file, read in chunks (the debug
/// binary is hundreds of MB).
fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((
        h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        size,
    ))
}

impl Host {
    /// Open the master connection; the error names the host and the fix.
    pub async fn connect(spec: HostSpec, ip: IpAddr) -> anyhow::Result<Self> {
        let mut b = openssh::SessionBuilder::default();
        b.user(spec.user.clone())
            .port(spec.port)
            .connect_timeout(CONNECT_TIMEOUT)
            // Sessions notice a dead host within ~3 s instead of hanging.
            .server_alive_interval(Duration::from_secs(1))
            .control_directory(std::env::temp_dir());
        if let Some(k) = &spec.key {
            b.keyfile(k);
        }
        if let Some(k) = &spec.known_hosts {
            b.user_known_hosts_file(k)
                .known_hosts_check(openssh::KnownHosts::Strict);
        }
        let session = b.connect(&spec.address).await.map_err(|e| {
            anyhow::anyhow!(
                "host {} ({}): cannot open an SSH connection: {}; check that sshd runs there on port {}, that {} is authorized for {} (~/.ssh/authorized_keys), and try `{}`",
                spec.name,
                spec.target(),
                error_text(&e),
                spec.port,
                spec.key
                    .as_ref()
                    .map_or("your ssh-agent's key".to_string(), |k| format!("key {}", k.display())),
                spec.user,
                spec.ssh_hint()
            )
        })?;
        Ok(Self {
            spec,
            ip,
            session,
            helper: Mutex::new(None),
            dir: Mutex::new(None),
        })
    }

    /// Check the host can run these nodes: each program installed, and
    /// `setsid` and `nft` present.
    pub async fn check(&self, programs: &[&PathBuf]) -> anyhow::Result<()> {
        for p in programs {
            let p = p.to_string_lossy();
            let script = format!("test -x {q} || command -v {q} >/dev/null", q = quote(&p));
            if self.run(&script).is_err() {
                bail!(
                    "host {}: the system under test is not installed there: {p} is not an executable file on {} (install it at the same path on every host, or change system.command)",
                    self.spec.name,
                    self.spec.address
                );
            }
        }
        for (tool, package) in [
            ("setsid", "util-linux"),
            ("flock", "util-linux"),
            ("nft", "nftables"),
        ] {
            if self.run(&format!("command -v {tool} >/dev/null")).is_err() {
                bail!(
                    "host {}: `{tool}` is not installed there (Debian: apt-get install {package})",
                    self.spec.name
                );
            }
        }
        Ok(())
    }

    /// The journal entry that closes this host's master should chaos-host
    /// die without closing it.
    pub fn master_entry(&self) -> chaos_journal::journal::Entry {
        chaos_journal::journal::Entry::Remote {
            host: self.spec.clone(),
            undo: chaos_journal::journal::RemoteUndo::Master {
                socket: self.session.control_socket().to_string_lossy().into_owned(),
            },
        }
    }

    /// `ssh` over this host's master running `script` in the remote shell.
    pub fn command(&self, script: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-S")
            .arg(self.session.control_socket())
            .args(["-o", "BatchMode=yes", "-T", "none", "--", script])
            .stdin(Stdio::null());
        cmd
    }

    /// Run `script` on the host; its stdout, or an error naming the host
    /// and quoting stderr.
    pub fn run(&self, script: &str) -> Result<String, String> {
        output(&self.spec, self.command(script))
    }

    /// Signal process group `pgid` on the host.
    pub fn killpg(&self, pgid: i32, sig: Signal) -> Result<(), String> {
        self.run(&format!("kill -{} -- -{pgid}", sig_name(sig)))
            .map(drop)
    }

    /// The scheduler state letter of `pid` on the host.
    pub fn state(&self, pid: i32) -> Option<char> {
        self.run(&format!("sed 's/.*) //' /proc/{pid}/stat | cut -c1"))
            .ok()
            .and_then(|s| s.trim().chars().next())
    }

    /// Wait until nothing listens on TCP `port` on the host, up to
    /// `deadline`.
    pub fn wait_free(&self, port: u16, deadline: Duration) -> Result<(), String> {
        let tries = (deadline.as_millis() / 50).max(1);
        self.run(&format!(
            "i=0; while ss -Htln 'sport = :{port}' | grep -q .; do i=$((i+1)); [ $i -ge {tries} ] && exit 1; sleep 0.05; done"
        ))
        .map(drop)
        .map_err(|_| {
            format!(
                "port {port} on host {} still in use {} ms after the node was killed",
                self.spec.name,
                deadline.as_millis()
            )
        })
    }

    /// The path of a chaos-host binary on the host that clock leases can
    /// run (`clock-lease`): [`Host::helper`], on x86_64 only (the injected
    /// code is x86_64 machine code).
    pub fn clock_helper(
        &self,
        journal: &chaos_journal::journal::Journal,
    ) -> Result<String, String> {
        if !cfg!(target_arch = "x86_64") {
            return Err(format!(
                "vDSO clock patching is x86_64 only, and this chaos-host is built for {}",
                std::env::consts::ARCH
            ));
        }
        self.helper(journal)
    }

    /// This run's directory on the host, `/tmp/chaos-host-RUN-HOST`
    /// (journaled before it is made, so `cleanup` removes it), made on the
    /// first call (blocking). It holds the uploaded helper and the fences
    /// of [`fenced`].
    pub fn run_dir(&self, journal: &chaos_journal::journal::Journal) -> Result<String, String> {
        let mut state = self.dir.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((dir, _)) = &*state {
            return Ok(dir.clone());
        }
        let run = journal
            .path()
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // One directory per host (hosts may share a filesystem), of a name
        // the journal's undo recognises.
        let host: String = self
            .spec
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let dir = format!("{HELPER_PREFIX}{run}-{host}");
        let seq = journal
            .record(chaos_journal::journal::Entry::Remote {
                host: self.spec.clone(),
                undo: chaos_journal::journal::RemoteUndo::Dir { path: dir.clone() },
            })
            .map_err(|e| format!("{e:#}"))?;
        *state = Some((dir.clone(), seq));
        self.run(&format!("umask 077; mkdir -p {}", quote(&dir)))?;
        Ok(dir)
    }

    /// The path of a chaos-host binary on the host for its hidden helpers
    /// (`clock-lease`, `disk-layer`), uploaded on the first call of a run
    /// (blocking): this very binary, to `/tmp/chaos-host-RUN-HOST/chaos-host`
    /// (in [`Host::run_dir`]), skipped when an identical one (SHA-256) is
    /// already there. Or why there is none.
    pub fn helper(&self, journal: &chaos_journal::journal::Journal) -> Result<String, String> {
        let mut state = self.helper.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bin) = &*state {
            return bin.clone();
        }
        let bin = self.install_helper(journal);
        *state = Some(bin.clone());
        bin
    }

    fn install_helper(&self, journal: &chaos_journal::journal::Journal) -> Result<String, String> {
        let name = &self.spec.name;
        // The upload is this binary: the host must run its architecture.
        let arch = self.run("uname -m")?;
        let (arch, ours) = (arch.trim(), std::env::consts::ARCH);
        if arch != ours {
            return Err(format!(
                "host {name} is {arch}, and this chaos-host (uploaded to run there) is built for {ours}"
            ));
        }
        // The running image itself: the file at current_exe() may have been
        // replaced by a rebuild since this process started.
        let exe = Path::new("/proc/self/exe");
        let (sha, size) =
            sha256_file(exe).map_err(|e| format!("reading {} to upload: {e}", exe.display()))?;
        let dir = self.run_dir(journal)?;
        let bin = format!("{dir}/chaos-host");
        let b = quote(&bin);
        let sum = format!("sha256sum < {b} | cut -d' ' -f1");
        let have = self.run(&format!("if [ -f {b} ]; then {sum}; fi"))?;
        if have.trim() != sha {
            let file = std::fs::File::open(exe)
                .map_err(|e| format!("opening {} to upload: {e}", exe.display()))?;
            // The session's stdin carries the file: written beside, made
            // executable, then renamed, so a half upload is never run.
            let mut cmd = self.command(&format!(
                "set -e; umask 077; cat > {b}.part; chmod 755 {b}.part; mv -f {b}.part {b}; {sum}"
            ));
            cmd.stdin(file);
            let got = output(&self.spec, cmd)
                .map_err(|e| format!("uploading chaos-host ({size} bytes) to {bin}: {e}"))?;
            if got.trim() != sha {
                return Err(format!(
                    "uploading chaos-host ({size} bytes) to {bin}: its SHA-256 there is {:?}, not {sha}",
                    got.trim()
                ));
            }
        }
        Ok(bin)
    }

    /// Remove [`Host::run_dir`] (and the helper in it) and mark its journal
    /// entry done (blocking; at the end of the run).
    pub fn remove_run_dir(&self, journal: &chaos_journal::journal::Journal) -> Result<(), String> {
        let mut state = self.dir.lock().unwrap_or_else(|e| e.into_inner());
        let Some((dir, seq)) = state.take() else {
            return Ok(());
        };
        self.run(&format!("rm -rf {}", quote(&dir)))?;
        journal.done(seq);
        Ok(())
    }

    /// Start a clock lease on process group `pgid` there: the uploaded
    /// helper's `clock-lease`, over the master, its stdin and stdout
    /// piped (closing stdin ends the lease).
    pub fn clock_lease(
        &self,
        bin: &str,
        pgid: i32,
        step_ns: i64,
        ppm: i64,
    ) -> Result<std::process::Child, String> {
        let mut cmd = self.command(&format!(
            "exec {} clock-lease {pgid} {step_ns} {ppm}",
            quote(bin)
        ));
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn()
            .map_err(|e| format!("host {}: running ssh: {e}", self.spec.name))
    }

    /// The script that starts one node process: a new session (its pid is
    /// the group id) with the given environment, output to the ssh
    /// session (the local log), pid written to `pid_file`; the shell waits
    /// for it so ssh exits with its status (128 + n when killed by signal n).
    pub fn launch_script(
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        data_dir: &Path,
        pid_file: &Path,
    ) -> String {
        let mut words = vec!["setsid".to_string(), "env".to_string()];
        words.extend(env.iter().map(|(k, v)| quote(&format!("{k}={v}"))));
        words.push(quote(&program.to_string_lossy()));
        words.extend(args.iter().map(|a| quote(a)));
        format!(
            "mkdir -p {dd} && cd / && {{ {cmd} </dev/null & echo $! > {pf}; wait $!; }}",
            dd = quote(&data_dir.to_string_lossy()),
            pf = quote(&pid_file.to_string_lossy()),
            cmd = words.join(" ")
        )
    }

    /// The pid and start time of the process `launch_script` started, once
    /// its pid file is written (up to 5 s).
    pub fn read_pid(&self, pid_file: &Path) -> Result<(i32, u64), String> {
        let pf = quote(&pid_file.to_string_lossy());
        let out = self.run(&format!(
            "i=0; while [ ! -s {pf} ]; do i=$((i+1)); [ $i -ge 500 ] && exit 1; sleep 0.01; done; p=$(cat {pf}); echo $p $(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -d' ' -f20)"
        ))?;
        let mut it = out.split_whitespace();
        let pid = it
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("host {}: no pid in {pf}", self.spec.name))?;
        Ok((pid, it.next().and_then(|s| s.parse().ok()).unwrap_or(0)))
    }
}

/// `ssh` straight to the host, without a master (the journal's undo after
/// chaos-host died with its masters).
pub fn direct(spec: &HostSpec, script: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-T"])
        .arg("-p")
        .arg(spec.port.to_string());
    if let Some(k) = &spec.key {
        cmd.arg("-i").arg(k);
    }
    if let Some(k) = &spec.known_hosts {
        cmd.arg("-o")
            .arg(format!("UserKnownHostsFile={}", k.display()))
            .args(["-o", "StrictHostKeyChecking=yes"]);
    }
    cmd.arg(format!("{}@{}", spec.user, spec.address))
        .arg("--")
        .arg(script)
        .stdin(Stdio::null());
    cmd
}

/// Run `cmd`; its stdout, or an error naming the host.
pub fn output(spec: &HostSpec, mut cmd: Command) -> Result<String, String> {
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) if o.status.code() == Some(255) => Err(format!(
            "host {}: ssh failed: {}",
            spec.name,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(o) => Err(format!(
            "host {}: exited with {}: {}",
            spec.name,
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!(
            "host {}: running ssh: {e} (install openssh-client)",
            spec.name
        )),
    }
}

/// The signal's name as `kill -NAME` takes it.
fn sig_name(sig: Signal) -> &'static str {
    sig.as_str().trim_start_matches("SIG")
}

/// The whole cause chain of an openssh error on one line.
fn error_text(e: &openssh::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.trim().to_string()
}

/// Quote `s` as one word for a POSIX shell, always in single quotes.
/// Hand-written (one line): the `shell-escape` crate `openssh` uses would
/// do too, but leaves safe words bare, and scripts here quote every path.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
