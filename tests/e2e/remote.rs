//! Nodes on remote hosts over SSH. Each "host" is a network namespace on a
//! bridge running Debian's sshd on its own 192.0.2.x address, with a host
//! key and a client key made for the test; namespaces share the filesystem,
//! so the reference binary is at the same path on every host.

use crate::util::*;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// N sshd hosts, torn down (every process in their namespaces killed,
/// namespaces and bridge deleted) when dropped, test passed or not.
struct Rig {
    dir: tempfile::TempDir,
    bridge: String,
    hosts: Vec<RigHost>,
}

struct RigHost {
    netns: String,
    addr: String,
    sshd: Option<Child>,
}

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "`{cmd}` failed");
}

impl Rig {
    /// `n` hosts in subnet slot `slot` (192.0.2.16*slot/28), so tests running
    /// at once never share an address.
    fn new(slot: u8, n: usize) -> Rig {
        Rig::with_sshd(slot, n, "")
    }

    /// [`Rig::new`] with `extra` lines in every sshd's config.
    fn with_sshd(slot: u8, n: usize, extra: &str) -> Rig {
        Rig::with_setup(slot, n, extra, "")
    }

    /// [`Rig::with_sshd`], each sshd started after the shell command `pre`
    /// ran in its host's namespaces (`ip netns exec` gives it its own mount
    /// namespace, so a mount there stays on that host).
    fn with_setup(slot: u8, n: usize, extra: &str, pre: &str) -> Rig {
        require("sshd", "scripts/install-deps.sh --test (openssh-server)");
        require("ssh", "scripts/install-deps.sh --test (openssh-client)");
        let dir = tempfile::tempdir().unwrap();
        let tag = format!("{}{slot}", std::process::id() % 100_000);
        let mut rig = Rig {
            dir,
            bridge: format!("chrb{tag}"),
            hosts: Vec::new(),
        };
        let d = rig.dir.path().to_path_buf();
        for key in ["host_key", "id"] {
            sh(&format!(
                "ssh-keygen -q -t ed25519 -N '' -f {}",
                d.join(key).display()
            ));
        }
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let base = 16 * slot;
        // The rig's bridge lives in the root namespace: never let its /28
        // shadow an address this machine already has (here eth0 holds
        // 192.0.2.2/24, its gateway 192.0.2.1).
        let taken = std::process::Command::new("ip")
            .args(["-4", "-o", "addr"])
            .output()
            .unwrap();
        for word in String::from_utf8_lossy(&taken.stdout).split_whitespace() {
            if let Some(last) = word
                .strip_prefix("192.0.2.")
                .and_then(|r| r.split('/').next())
                .and_then(|o| o.parse::<u8>().ok())
            {
                assert!(
                    !(base..base + 16).contains(&last),
                    "192.0.2.{last} is already on this machine, inside the rig's subnet 192.0.2.{base}/28; pick another slot"
                );
            }
        }
        sh(&format!(
            "ip link add {b} type bridge && ip addr add 192.0.2.{}/28 dev {b} && ip link set {b} up",
            base + 1,
            b = rig.bridge
        ));
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        let mut known = String::new();
        for k in 0..n {
            let ns = format!("chrig-{tag}-{k}");
            let addr = format!("192.0.2.{}", base + 2 + k as u8);
            let veth = format!("chrv{tag}{k}");
            sh(&format!("ip netns add {ns}"));
            rig.hosts.push(RigHost {
                netns: ns.clone(),
                addr: addr.clone(),
                sshd: None,
            });
            sh(&format!(
                "ip link add {veth} type veth peer name eth0 netns {ns} && ip link set {veth} master {b} up && ip -n {ns} addr add {addr}/28 dev eth0 && ip -n {ns} link set eth0 up && ip -n {ns} link set lo up",
                b = rig.bridge
            ));
            let config = d.join(format!("sshd-{k}.conf"));
            std::fs::write(
                &config,
                format!(
                    "ListenAddress {addr}\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile none\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nMaxSessions 100\nMaxStartups 100\n{extra}",
                    hk = d.join("host_key").display(),
                    ak = d.join("authorized_keys").display()
                ),
            )
            .unwrap();
            let log = std::fs::File::create(d.join(format!("sshd-{k}.log"))).unwrap();
            // `exec`: the child's pid is sshd's, whose mount namespace
            // every session shares.
            let child = Command::new("ip")
                .args(["netns", "exec", &ns, "sh", "-c"])
                .arg(format!(
                    "{pre}{sep}exec /usr/sbin/sshd -D -e -f {}",
                    config.display(),
                    sep = if pre.is_empty() { "" } else { " && " }
                ))
                .stdin(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            rig.hosts[k].sshd = Some(child);
            known.push_str(&format!("{addr} {host_pub}"));
        }
        std::fs::write(d.join("known_hosts"), known).unwrap();
        for h in &rig.hosts {
            // Ready when sshd accepts connections (its own deadline, no
            // fixed sleep).
            let until = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect((h.addr.as_str(), 22)).is_err() {
                assert!(Instant::now() < until, "sshd on {} never listened", h.addr);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        rig
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("id")
    }

    /// A `--hosts` file listing every host (round robin placement), with
    /// `extra` TOML appended.
    fn hosts_file(&self, extra: &str) -> PathBuf {
        let mut text = String::new();
        for (k, h) in self.hosts.iter().enumerate() {
            text.push_str(&format!(
                "[[host]]\nname = \"h{k}\"\naddress = \"{}\"\nkey = \"{}\"\nknown_hosts = \"{}\"\n\n",
                h.addr,
                self.key().display(),
                self.dir.path().join("known_hosts").display()
            ));
        }
        text.push_str(extra);
        let path = self.dir.path().join("hosts.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// FUSE mounts under `dir` in host `k`'s mount namespace (its sshd's:
    /// the hosts' mounts are not seen from this machine's namespace).
    fn fuse_mounts(&self, k: usize, dir: &Path) -> Vec<String> {
        let pid = self.hosts[k].sshd.as_ref().expect("sshd runs").id();
        std::fs::read_to_string(format!("/proc/{pid}/mounts"))
            .unwrap()
            .lines()
            .filter(|l| l.contains("fuse") && l.contains(dir.to_str().unwrap()))
            .map(str::to_string)
            .collect()
    }

    /// `path` as host `k` sees it (through its sshd's root, so in its mount
    /// namespace).
    fn on_host(&self, k: usize, path: &Path) -> PathBuf {
        let pid = self.hosts[k].sshd.as_ref().expect("sshd runs").id();
        PathBuf::from(format!("/proc/{pid}/root{}", path.display()))
    }

    /// Pids of every process in host `k`'s namespace.
    fn pids(&self, k: usize) -> Vec<u32> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.hosts[k].netns])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// The host drops off the network: its sshd and every session it
    /// serves die (the nodes it runs live on).
    fn kill_sshd(&mut self, k: usize) {
        for pid in self.pids(k) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "sshd" {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if let Some(mut c) = self.hosts[k].sshd.take() {
            let _ = c.wait();
        }
    }

    /// nftables tables of chaos-host in host `k`'s namespace.
    fn tables(&self, k: usize) -> String {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.hosts[k].netns,
                "nft",
                "list",
                "tables",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("chaos_host"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for k in 0..self.hosts.len() {
            for pid in self.pids(k) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            if let Some(mut c) = self.hosts[k].sshd.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            let _ = Command::new("ip")
                .args(["netns", "delete", &self.hosts[k].netns])
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .status();
    }
}

/// The reference campaign with client URLs at `{host}` (the node's host
/// address) and `edit` applied. Its nodes are served by the chaos-host
/// binary under test (`reference-node`, the embedded default's way), so
/// they are built from this tree whatever else shares the target dir.
fn remote_campaign(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    example_campaign(dir, "reference/campaign.toml", |t| {
        edit(
            t.replace(
                "\"../../target/debug/quorum-kv\",",
                &format!(
                    "{:?}, \"reference-node\",",
                    env!("CARGO_BIN_EXE_chaos-host")
                ),
            )
            .replace("http://127.0.0.1:{port}", "http://{host}:{port}"),
        )
    })
}

fn status_of(c: &serde_json::Value) -> &str {
    c["status"].as_str().unwrap_or("?")
}

/// The reference campaign with the four original built-in faults, nodes on
/// three sshd hosts: every fault is carried out on the hosts and passes with
/// its effect verified there (a partition by nftables counters on the hosts,
/// a clock skew by the node's own clock, probed over the network, showing
/// the asked offset); nothing is left on the hosts.
#[test]
fn reference_campaign_on_three_ssh_hosts() {
    let rig = Rig::new(1, 3);
    let dir = tempfile::tempdir().unwrap();
    let c = remote_campaign(dir.path(), |t| t);
    let hosts = rig.hosts_file("");
    let plugins = plugin_paths(&[
        "kill_primary_mid_write",
        "partition_minority",
        "drop_random_acks",
        "clock_skew_peer",
    ]);
    let mut args = vec![
        "run",
        "--campaign",
        c.to_str().unwrap(),
        "--hosts",
        hosts.to_str().unwrap(),
        "--cycles",
        "2",
        "--writes",
        "40",
        "--settle-ms",
        "300",
    ];
    for p in &plugins {
        args.extend(["--plugin", p.as_str()]);
    }
    let run = chaos(dir.path(), &args);
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 8, "{}", run.stderr);
    let mut helpers = Vec::new();
    for c in &cycles {
        let class = c["class"].as_str().unwrap();
        let effects = c["effects"].as_array().cloned().unwrap_or_default();
        assert_eq!(status_of(c), "pass", "{class}: {c}\n{}", run.stderr);
        assert!(effects.iter().all(|e| e["verified"] == true), "{c}");
        assert!(effects.iter().all(|e| e["simulated"] == false), "{c}");
        if class == "partition_minority" {
            let ev = effects[0]["evidence"].as_str().unwrap();
            assert!(ev.contains("nftables table inet chaos_host_"), "{ev}");
        }
        if class == "clock_skew_peer" {
            let ev = effects[0]["evidence"].as_str().unwrap();
            // Asked +30000 ms (the campaign's offset_ms).
            let seen = probe_ms(ev, "node clock probe: ");
            assert!((seen - 30_000).abs() < 500, "{ev}");
            assert!(ev.contains("vDSO patched in"), "{ev}");
            helpers.push(helper_path(ev));
            eprintln!("clock_skew_peer: asked +30000 ms, {ev}");
        }
    }
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(!helpers.is_empty());
    for k in 0..3 {
        assert_eq!(rig.tables(k), "", "host {k}");
    }
    assert_no_helper_left(&helpers);
    assert!(journals(dir.path()).is_empty());
}

/// The number after `label` in `evidence` ("... node clock probe: +30004 ms").
fn probe_ms(evidence: &str, label: &str) -> i64 {
    evidence
        .split(label)
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {label:?} in {evidence}"))
}

/// The uploaded helper a remote clock effect names ("... by PATH: ...",
/// or "helper PATH: ...").
fn helper_path(evidence: &str) -> PathBuf {
    let at = evidence
        .find("/tmp/chaos-host-")
        .unwrap_or_else(|| panic!("no helper path in {evidence}"));
    let rest = &evidence[at..];
    PathBuf::from(&rest[..rest.find(':').unwrap_or(rest.len())])
}

/// The helpers and their directories are gone, and no process runs them
/// (the hosts share this filesystem and process table).
fn assert_no_helper_left(helpers: &[PathBuf]) {
    for h in helpers {
        assert!(
            h.starts_with("/tmp") && h.ends_with("chaos-host"),
            "{}",
            h.display()
        );
        assert!(!h.parent().unwrap().exists(), "{} left", h.display());
    }
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        for h in helpers {
            assert!(
                !cmd.contains(h.to_str().unwrap()),
                "process {:?} still runs the helper: {cmd}",
                entry.file_name()
            );
        }
    }
}

/// A campaign with the drift class granted: 500000 ppm (the clock runs
/// 1.5 times as fast) for 1500 ms.
fn with_drift(t: String) -> String {
    t.replace(
        "clock_skew_peer = [\"clock\"]",
        "clock_skew_peer = [\"clock\"]\nclock_drift_peer = [\"clock\"]",
    ) + "\n[params.clock_drift_peer]\nppm = 500000\nms = 1500\n"
}

/// A clock drift on a node placed on an sshd host runs there: the node's
/// clock, probed over the network at the lease end, has moved by the rate
/// times the time elapsed; the helper is removed at the end.
#[test]
fn clock_drift_runs_on_the_remote_host() {
    let rig = Rig::new(5, 3);
    let dir = tempfile::tempdir().unwrap();
    let c = remote_campaign(dir.path(), with_drift);
    let hosts = rig.hosts_file("");
    let p = plugin("clock_drift_peer");
    let run = chaos(
        dir.path(),
        &[
            "run",
            "--campaign",
            c.to_str().unwrap(),
            "--hosts",
            hosts.to_str().unwrap(),
            "--plugin",
            p.to_str().unwrap(),
            "--cycles",
            "2",
            "--writes",
            "40",
            "--settle-ms",
            "300",
        ],
    );
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 2, "{}", run.stderr);
    let mut helpers = Vec::new();
    for c in &cycles {
        assert_eq!(status_of(c), "pass", "{c}\n{}", run.stderr);
        let e = &c["effects"][0];
        assert_eq!(e["verified"], true, "{e}");
        assert_eq!(e["simulated"], false, "{e}");
        let ev = e["evidence"].as_str().unwrap();
        // 500000 ppm over ~1.5 s: ~+750 ms.
        let seen = probe_ms(ev, "node clock probe ");
        let expected = probe_ms(ev, "expected ");
        assert!((600..900).contains(&expected), "{ev}");
        assert!((seen - expected).abs() < 150, "{ev}");
        assert!(ev.contains("on host h"), "{ev}");
        helpers.push(helper_path(ev));
        eprintln!("clock_drift_peer: asked +500000 ppm, {ev}");
    }
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_no_helper_left(&helpers);
    assert!(processes_mentioning(dir.path()).is_empty());
    assert!(journals(dir.path()).is_empty());
}

/// Hosts whose sessions refuse ptrace (their sshd sets
/// CHAOS_CLOCK_PTRACE=off for every session, as a host with ptrace locked
/// down would refuse it): the skew is recorded simulated with that reason,
/// the cycle is not green, and nothing is left on the hosts.
#[test]
fn a_remote_skew_refused_there_is_simulated_and_not_green() {
    let rig = Rig::with_sshd(6, 3, "SetEnv CHAOS_CLOCK_PTRACE=off\n");
    let dir = tempfile::tempdir().unwrap();
    let c = remote_campaign(dir.path(), |t| t);
    let hosts = rig.hosts_file("");
    let p = plugin("clock_skew_peer");
    let run = chaos(
        dir.path(),
        &[
            "run",
            "--campaign",
            c.to_str().unwrap(),
            "--hosts",
            hosts.to_str().unwrap(),
            "--plugin",
            p.to_str().unwrap(),
            "--cycles",
            "1",
            "--writes",
            "40",
            "--settle-ms",
            "300",
        ],
    );
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 1, "{}", run.stderr);
    let c = &cycles[0];
    assert_ne!(status_of(c), "pass", "{c}");
    let e = &c["effects"][0];
    assert_eq!(e["simulated"], true, "{e}");
    assert_eq!(e["verified"], false, "{e}");
    let ev = e["evidence"].as_str().unwrap();
    assert!(
        ev.contains("on remote host h") && ev.contains("ptrace refused by CHAOS_CLOCK_PTRACE=off"),
        "{ev}"
    );
    assert_ne!(run.code, 0, "a simulated skew is not green");
    eprintln!("refused on the host: cycle {}, {ev}", status_of(c));
    assert_no_helper_left(&[helper_path(ev)]);
    assert!(processes_mentioning(dir.path()).is_empty());
    assert!(journals(dir.path()).is_empty());
}

/// A host nothing answers on is one error before the run, naming the host
/// and the fix; nothing is written.
#[test]
fn unreachable_host_is_refused_before_the_run() {
    let rig = Rig::new(2, 1);
    let dir = tempfile::tempdir().unwrap();
    let c = remote_campaign(dir.path(), |t| t);
    // A second host at an address of the rig where no sshd listens.
    let hosts = rig.hosts_file(&format!(
        "[[host]]\nname = \"ghost\"\naddress = \"{}\"\nport = 2222\nkey = \"{}\"\n",
        rig.hosts[0].addr,
        rig.key().display()
    ));
    let k = plugin("kill_primary_mid_write");
    let run = chaos(
        dir.path(),
        &[
            "run",
            "--campaign",
            c.to_str().unwrap(),
            "--hosts",
            hosts.to_str().unwrap(),
            "--plugin",
            k.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "host ghost (root@{}:2222): cannot open an SSH connection",
            rig.hosts[0].addr
        )) && run.stderr.contains("Connection refused"),
        "{}",
        run.stderr
    );
    assert!(!run.out.join("cycles.jsonl").exists());
    assert!(journals(dir.path()).is_empty());
}

/// chaos-host SIGKILLed while a partition holds on the hosts leaves node
/// groups, nftables tables and the uploaded clock helper there; `chaos-host
/// cleanup` reaches every host over SSH and removes them all.
#[test]
fn sigkill_mid_partition_then_cleanup_leaves_nothing_on_any_host() {
    let rig = Rig::new(3, 3);
    let dir = tempfile::tempdir().unwrap();
    let c = remote_campaign(dir.path(), |t| {
        t.replace(
            "[params.partition_minority]\nms = 500",
            "[params.partition_minority]\nms = 60000",
        )
    });
    let hosts = rig.hosts_file("");
    let p = plugin("partition_minority");
    // A class that skews clocks: the helper is uploaded to every host
    // before the first cycle, and cleanup must remove it too.
    let clock = plugin("clock_skew_peer");
    let mut child = spawn_chaos(
        dir.path(),
        &[
            "run",
            "--campaign",
            c.to_str().unwrap(),
            "--hosts",
            hosts.to_str().unwrap(),
            "--plugin",
            p.to_str().unwrap(),
            "--plugin",
            clock.to_str().unwrap(),
            "--cycles",
            "1",
            "--out",
            dir.path().join("out").to_str().unwrap(),
        ],
        "chaos.log",
    );
    // Mid-partition: the journal holds a table on a host.
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let text: String = journal_text(dir.path());
        if text.contains("\"what\":\"nft\"")
            && text.contains("\"what\":\"dir\"")
            && (0..3).any(|k| !rig.tables(k).is_empty())
        {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "chaos-host ended before partitioning: {}",
            std::fs::read_to_string(dir.path().join("chaos.log")).unwrap()
        );
        assert!(Instant::now() < until, "no partition within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !processes_mentioning(dir.path()).is_empty(),
        "the remote nodes outlive a SIGKILLed chaos-host (else cleanup proves nothing)"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .arg("cleanup")
        .env("RUST_BACKTRACE", "0")
        .env("CHAOS_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("deleted nftables table inet chaos_host_"),
        "{text}"
    );
    assert!(text.contains("killed process group"), "{text}");
    // "removed the uploaded chaos-host /tmp/chaos-host-RUN-h0 on host h0"
    let removed: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split("removed the uploaded chaos-host ").nth(1))
        .map(|r| PathBuf::from(r.split(' ').next().unwrap()).join("chaos-host"))
        .collect();
    assert_eq!(removed.len(), 3, "{text}");
    assert_no_helper_left(&removed);
    for k in 0..3 {
        assert_eq!(rig.tables(k), "", "host {k}: {text}");
    }
    assert_nothing_left(dir.path(), None);
}

/// A host whose sshd dies mid-run (the host drops off): the cycle is not
/// green, the record says the node was lost, and chaos-host ends on its own.
#[test]
fn a_host_that_drops_mid_run_fails_the_cycle() {
    let mut rig = Rig::new(4, 3);
    let dir = tempfile::tempdir().unwrap();
    let c = remote_campaign(dir.path(), |t| {
        t.replace(
            "[params.drop_random_acks]\nms = 500",
            "[params.drop_random_acks]\nms = 1500",
        )
    });
    let hosts = rig.hosts_file("");
    let p = plugin("drop_random_acks");
    let mut child = spawn_chaos(
        dir.path(),
        &[
            "run",
            "--campaign",
            c.to_str().unwrap(),
            "--hosts",
            hosts.to_str().unwrap(),
            "--plugin",
            p.to_str().unwrap(),
            "--cycles",
            "1",
            "--out",
            dir.path().join("out").to_str().unwrap(),
        ],
        "chaos.log",
    );
    // Mid-run: a node is paused (journaled before the SIGSTOP).
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let text: String = journal_text(dir.path());
        if text.contains("\"what\":\"stopped\"") {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before the pause"
        );
        assert!(Instant::now() < until, "no pause within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    rig.kill_sshd(2);
    let status = child.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("chaos.log")).unwrap();
    assert_ne!(status.code(), Some(0), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let cycles: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("out/cycles.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    if let Some(c) = cycles.first() {
        assert_ne!(status_of(c), "pass", "{c}");
        assert!(c.to_string().contains("SSH session ended"), "{c}");
    } else {
        assert!(log.contains("host h2"), "{log}");
    }
    drop(rig);
    // With the dropped host's processes gone, nothing else is left.
    let left = processes_mentioning(dir.path());
    assert!(left.is_empty(), "{left:?}");
}

/// The helper a remote clock lease runs on the host (`chaos-host
/// clock-lease PGID STEP_NS PPM`), driven here as the host drives it over
/// SSH: it sets the offset in the group and reports, patches a process that
/// execs during the lease, and on stdin EOF resets the clock and reports
/// how many it patched late.
#[test]
fn the_clock_lease_helper_holds_patches_newcomers_and_resets_on_eof() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::process::CommandExt;
    if std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").is_ok_and(|s| s.trim() == "3")
    {
        panic!("ptrace is refused on this machine (yama scope 3): the helper cannot be tested");
    }
    // A shell that execs python on its first line; python prints its wall
    // clock (ms) for each line after.
    let py = "import sys,time\nfor l in sys.stdin:\n    print(int(time.time()*1000),flush=True)";
    let mut node = Command::new("sh")
        .args(["-c", &format!("read x; exec python3 -u -c \"{py}\"")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = node.id().to_string();
    // Ready when the shell sleeps in its `read` (before that the kernel may
    // not let it be stopped yet).
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let exe = std::fs::read_link(format!("/proc/{pgid}/exe")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pgid}/stat")).unwrap_or_default();
        let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
        if exe.to_string_lossy().contains("sh") && state == Some('S') {
            break;
        }
        assert!(Instant::now() < until, "the shell never waited in `read`");
        std::thread::yield_now();
    }
    let mut node_in = node.stdin.take().unwrap();
    let mut node_out = BufReader::new(node.stdout.take().unwrap());
    let mut offset = |node_in: &mut std::process::ChildStdin| {
        writeln!(node_in, "t").unwrap();
        let mut l = String::new();
        node_out.read_line(&mut l).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        l.trim().parse::<i64>().unwrap() - now
    };
    let mut lease = Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .args(["clock-lease", &pgid, "-7200000000000", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lease_in = lease.stdin.take().unwrap();
    let mut lease_out = BufReader::new(lease.stdout.take().unwrap());
    let mut report = || {
        let mut l = String::new();
        lease_out.read_line(&mut l).unwrap();
        serde_json::from_str::<serde_json::Value>(&l).unwrap_or_else(|e| panic!("{l:?}: {e}"))
    };
    let first = report();
    assert_eq!(first["set"], 1, "{first}");
    assert_eq!(first["failed"], serde_json::json!([]), "{first}");
    // The shell execs python: a fresh vDSO, which the lease's watch finds
    // and patches (polled, within a bound).
    let until = Instant::now() + Duration::from_secs(10);
    writeln!(node_in, "exec").unwrap();
    let mut seen = offset(&mut node_in);
    while (seen + 7_200_000).abs() > 500 {
        assert!(
            Instant::now() < until,
            "exec'd process never skewed: {seen} ms"
        );
        seen = offset(&mut node_in);
    }
    drop(lease_in);
    let end = report();
    assert!(lease.wait().unwrap().success());
    // At least the exec into python (python3 may be a shim that execs
    // again: each new image is patched anew).
    assert!(end["late"].as_u64().unwrap() >= 1, "{end}");
    assert_eq!(end["set"], 1, "{end}");
    let back = offset(&mut node_in);
    assert!(back.abs() < 500, "reset: {back} ms");
    eprintln!(
        "clock-lease: first {first}, exec'd process at {seen:+} ms, end {end}, after reset {back:+} ms"
    );
    node.kill().unwrap();
    node.wait().unwrap();
}

/// The reference campaign for disk faults on the hosts: `fault` granted
/// `caps` with `params`, and `edit` applied.
fn disk_campaign(
    dir: &Path,
    fault: &str,
    caps: &str,
    params: &str,
    edit: impl Fn(String) -> String,
) -> PathBuf {
    remote_campaign(dir, |t| {
        edit(
            format!("{t}\n[params.{fault}]\n{params}\n")
                .replace("[grants]\n", &format!("[grants]\n{fault} = [{caps}]\n")),
        )
    })
}

/// quorum-kv acknowledging before it fsyncs (`--bug ack-before-fsync`).
fn ack_before_fsync(t: String) -> String {
    t.replace(
        "\"--quorum\", \"2\",",
        "\"--quorum\", \"2\", \"--bug\", \"ack-before-fsync\",",
    )
}

/// Run `fault` from `campaign` on `rig`'s hosts for `cycles` of `writes`.
fn run_remote(
    dir: &Path,
    campaign: &Path,
    rig: &Rig,
    fault: &str,
    cycles: &str,
    writes: &str,
) -> Run {
    let hosts = rig.hosts_file("");
    let p = plugin(fault);
    chaos(
        dir,
        &[
            "run",
            "--campaign",
            campaign.to_str().unwrap(),
            "--hosts",
            hosts.to_str().unwrap(),
            "--plugin",
            p.to_str().unwrap(),
            "--cycles",
            cycles,
            "--writes",
            writes,
            "--settle-ms",
            "2000",
        ],
    )
}

/// The first number in `evidence` before `what`.
fn figure(evidence: &str, what: &str) -> u64 {
    let before = evidence.split(what).next().unwrap();
    before
        .split(|c: char| !c.is_ascii_digit())
        .rfind(|w| !w.is_empty())
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no figure before {what:?} in {evidence:?}"))
}

/// No FUSE mount under `dir` on any host, no helper, node or journal left.
fn assert_no_disk_left(rig: &Rig, dir: &Path) {
    for k in 0..rig.hosts.len() {
        let left = rig.fuse_mounts(k, dir);
        assert!(left.is_empty(), "host {k}: mounts left: {left:?}");
    }
    // A helper names its data dir (under `dir`) in its command line.
    assert_nothing_left(dir, None);
}

/// A power failure on nodes placed on sshd hosts: each node's FUSE layer
/// is mounted on its host by the uploaded helper, holds back what was not
/// fsynced, and drops it at the kill. quorum-kv acknowledging before fsync
/// loses acknowledged writes (the cycles fail); the correct system, under
/// the same fault, passes with every acknowledged write fsynced through.
#[test]
fn power_failure_on_ssh_hosts_catches_ack_before_fsync() {
    let rig = Rig::new(7, 3);
    let params = "at = 0.5\ndown_ms = 100";
    let caps = "\"disk\", \"restart\"";

    let dir = tempfile::tempdir().unwrap();
    let c = disk_campaign(dir.path(), "power_failure", caps, params, ack_before_fsync);
    let run = run_remote(dir.path(), &c, &rig, "power_failure", "3", "60");
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 3, "{}", run.stderr);
    assert_eq!(run.code, 1, "{}", run.stderr);
    for c in &cycles {
        for e in c["effects"].as_array().unwrap() {
            eprintln!(
                "cycle {} {} node {} {}..{} us: {}",
                c["cycle"], e["kind"], e["node"], e["start_us"], e["end_us"], e["evidence"]
            );
        }
        eprintln!("cycle {} burst {} ms", c["cycle"], c["phases_ms"]["burst"]);
    }
    let lost: u64 = cycles
        .iter()
        .map(|c| c["lost_acked"].as_u64().unwrap())
        .sum();
    assert!(lost > 0, "no acknowledged write lost");
    for c in &cycles {
        let disk: Vec<&serde_json::Value> = c["effects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "disk")
            .collect();
        assert_eq!(disk.len(), 3, "{c}");
        for e in &disk {
            let ev = e["evidence"].as_str().unwrap();
            assert!(ev.contains(" on host h"), "{ev}");
        }
        if c["lost_acked"].as_u64().unwrap() > 0 {
            assert_eq!(status_of(c), "fail", "{c}");
            assert!(
                c["reasons"].to_string().contains("missing on a live node"),
                "{c}"
            );
            let dropped: u64 = disk
                .iter()
                .map(|e| figure(e["evidence"].as_str().unwrap(), "dropped at"))
                .sum();
            assert!(dropped > 0, "{c}");
            eprintln!(
                "ack-before-fsync on hosts: cycle {} {}, {} acknowledged write(s) lost, {dropped} byte(s) dropped; {}",
                c["cycle"],
                status_of(c),
                c["lost_acked"],
                disk[0]["evidence"]
            );
        }
    }
    assert_no_disk_left(&rig, dir.path());

    let dir = tempfile::tempdir().unwrap();
    let c = disk_campaign(dir.path(), "power_failure", caps, params, |t| t);
    let run = run_remote(dir.path(), &c, &rig, "power_failure", "2", "60");
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 2, "{}", run.stderr);
    for c in &cycles {
        assert_eq!(status_of(c), "pass", "{c}\n{}", run.stderr);
        assert_eq!(c["lost_acked"], 0, "{c}");
        for e in c["effects"].as_array().unwrap() {
            assert_eq!(e["verified"], true, "{e}");
            if e["kind"] == "disk" {
                let ev = e["evidence"].as_str().unwrap();
                assert!(ev.contains("at 1 kill(s)"), "{ev}");
                assert!(figure(ev, "fsynced through") > 0, "{ev}");
            }
        }
    }
    assert_eq!(run.code, 0, "{}", run.stderr);
    eprintln!(
        "correct system on hosts: {}",
        cycles[0]["effects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "disk")
            .unwrap()["evidence"]
    );
    assert_no_disk_left(&rig, dir.path());
}

/// A full disk on a peer placed on an sshd host: writes and creates there
/// fail with ENOSPC, counted by the host's layer and read back over SSH.
#[test]
fn disk_full_on_an_ssh_host_is_verified_by_its_counts() {
    let rig = Rig::new(8, 3);
    let dir = tempfile::tempdir().unwrap();
    let c = disk_campaign(
        dir.path(),
        "disk_full_peer",
        "\"disk\"",
        "ms = 300\nat = 0.2",
        |t| t,
    );
    let run = run_remote(dir.path(), &c, &rig, "disk_full_peer", "2", "60");
    let cycles = run.cycles();
    assert_eq!(cycles.len(), 2, "{}", run.stderr);
    for c in &cycles {
        assert_eq!(status_of(c), "pass", "{c}\n{}", run.stderr);
        let e = &c["effects"][0];
        assert_eq!(e["kind"], "disk", "{e}");
        assert_eq!(e["verified"], true, "{e}");
        let ev = e["evidence"].as_str().unwrap();
        assert!(ev.contains(" on host h"), "{ev}");
        assert!(figure(ev, "write(s) refused with ENOSPC") > 0, "{ev}");
        eprintln!("disk_full_peer on a host: {ev}");
    }
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_no_disk_left(&rig, dir.path());
}

/// Hosts without a usable /dev/fuse (an empty file bound over it in each
/// host's mount namespace): the disk class is refused before the run,
/// exit 2, naming the host and what is missing; nothing is written.
#[test]
fn a_host_without_fuse_refuses_disk_faults_before_the_run() {
    let rig = Rig::with_setup(
        9,
        2,
        "",
        "f=$(mktemp) && mount --bind \"$f\" /dev/fuse && rm \"$f\"",
    );
    let dir = tempfile::tempdir().unwrap();
    let c = disk_campaign(
        dir.path(),
        "disk_full_peer",
        "\"disk\"",
        "ms = 300\nat = 0.2",
        |t| t,
    );
    let run = run_remote(dir.path(), &c, &rig, "disk_full_peer", "1", "60");
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("asks for disk faults")
            && run.stderr.contains("host h0: there is no /dev/fuse")
            && run.stderr.contains("host h1: there is no /dev/fuse"),
        "{}",
        run.stderr
    );
    eprintln!("refused: {}", run.stderr.trim());
    assert!(!run.out.join("cycles.jsonl").exists());
    assert!(journals(dir.path()).is_empty());
}

/// chaos-host SIGKILLed while a disk fault holds on a host's layer, then
/// `chaos-host cleanup`: no FUSE mount, helper or node is left on any host.
#[test]
fn sigkill_with_a_remote_disk_fault_in_force_then_cleanup_leaves_no_mount() {
    let rig = Rig::new(10, 3);
    let dir = tempfile::tempdir().unwrap();
    let c = disk_campaign(
        dir.path(),
        "disk_full_peer",
        "\"disk\"",
        "ms = 60000\nat = 0.0",
        |t| t,
    );
    let hosts = rig.hosts_file("");
    let p = plugin("disk_full_peer");
    let out = dir.path().join("out");
    let mut child = spawn_chaos(
        dir.path(),
        &[
            "run",
            "--campaign",
            c.to_str().unwrap(),
            "--hosts",
            hosts.to_str().unwrap(),
            "--plugin",
            p.to_str().unwrap(),
            "--cycles",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
        "chaos.log",
    );
    // In force once a peer's data dir, seen on its host, refuses a new file
    // with ENOSPC (round robin: node i on host i).
    let cycle = std::path::absolute(out.join("work/disk_full_peer/cycle-1")).unwrap();
    let until = Instant::now() + Duration::from_secs(120);
    'wait: loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "chaos-host exited ({status}):\n{}",
                std::fs::read_to_string(dir.path().join("chaos.log")).unwrap_or_default()
            );
        }
        for i in 1..3 {
            let probe = rig.on_host(i, &cycle.join(format!("node-{i}/probe")));
            if let Err(e) = std::fs::write(&probe, b"x")
                && e.raw_os_error() == Some(libc::ENOSPC)
            {
                break 'wait;
            }
        }
        assert!(Instant::now() < until, "the disk never filled");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text: String = journal_text(dir.path());
    assert!(text.contains("\"what\":\"mount\""), "{text}");
    // The uploaded binary running `disk-layer` (not the ssh clients that
    // started it).
    let helper = |cmd: &str| cmd.starts_with("/tmp/chaos-host-") && cmd.contains(" disk-layer ");
    // The helpers die first, unable to unmount (a helper dies with its
    // host's OOM killer, say): their mounts stay for the journal's undo.
    let helpers: Vec<u32> = processes_mentioning(dir.path())
        .into_iter()
        .filter(|(_, cmd)| helper(cmd))
        .map(|(pid, _)| pid)
        .collect();
    assert_eq!(helpers.len(), 3, "one helper per node");
    for pid in helpers {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while processes_mentioning(dir.path())
        .iter()
        .any(|(_, cmd)| helper(cmd))
    {
        assert!(Instant::now() < until, "helpers outlive SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    let left: usize = (0..3).map(|k| rig.fuse_mounts(k, dir.path()).len()).sum();
    assert_eq!(left, 3, "the dead helpers' mounts stay for cleanup");
    let said = Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .arg("cleanup")
        .env("RUST_BACKTRACE", "0")
        .env("CHAOS_STATE_DIR", dir.path().join("state"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&said.stdout).into_owned();
    eprintln!("cleanup after SIGKILL:\n{said}");
    assert!(said.contains("killed process group"), "{said}");
    assert_eq!(said.matches("unmounted disk layer").count(), 3, "{said}");
    for k in 0..3 {
        let left = rig.fuse_mounts(k, dir.path());
        assert!(left.is_empty(), "host {k}: mounts left: {left:?}\n{said}");
    }
    let left = processes_mentioning(dir.path());
    assert!(left.is_empty(), "{left:?}");
    assert!(journals(dir.path()).is_empty());
}

/// The `disk-layer` helper a remote node's disk runs on its host, driven
/// here as chaos-host drives it over SSH (JSON lines on stdin and stdout):
/// it mounts and reports, holds unsynced data back and drops it at a power
/// cut, refuses writes with ENOSPC, kills a process group, and unmounts on
/// stdin EOF, counting each.
#[test]
fn the_disk_layer_helper_serves_leases_and_unmounts_on_eof() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::process::CommandExt;
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let (backing, mount) = (dir.path().join("b"), dir.path().join("m"));
    let mut helper = Command::new(env!("CARGO_BIN_EXE_chaos-host"))
        .arg("disk-layer")
        .args([&backing, &mount])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = helper.stdin.take().unwrap();
    let mut out = BufReader::new(helper.stdout.take().unwrap());
    let mut read = || {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        serde_json::from_str::<serde_json::Value>(&l).unwrap_or_else(|e| panic!("{l:?}: {e}"))
    };
    let ready = read();
    assert!(ready.get("error").is_none(), "{ready}");
    let mut ask = |cmd: &str| {
        writeln!(input, "{cmd}").unwrap();
        let r = read();
        assert!(r.get("error").is_none(), "{cmd}: {r}");
        r
    };
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(mount.to_str().unwrap())
    };
    assert!(mounted());
    // A power failure: the fsynced append survives, the other is dropped.
    ask(r#"{"op":"set","fault":"lose_unsynced"}"#);
    let log = mount.join("log");
    let mut f = std::fs::File::create(&log).unwrap();
    f.write_all(b"synced\n").unwrap();
    f.sync_data().unwrap();
    f.write_all(b"lost\n").unwrap();
    drop(f);
    assert_eq!(std::fs::read(backing.join("log")).unwrap(), b"synced\n");
    let r = ask(r#"{"op":"power_cut"}"#);
    let c = &r["counts"];
    assert_eq!(
        (&c["held"], &c["synced"], &c["discarded"], &c["cuts"]),
        (
            &serde_json::json!(12),
            &serde_json::json!(7),
            &serde_json::json!(5),
            &serde_json::json!(1)
        ),
        "{r}"
    );
    assert_eq!(std::fs::read(&log).unwrap(), b"synced\n");
    let r = ask(r#"{"op":"clear","fault":"lose_unsynced"}"#);
    assert_eq!(r["released"], 0, "{r}");
    // A full disk.
    ask(r#"{"op":"set","fault":"disk_full"}"#);
    let e = std::fs::write(mount.join("new"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
    let r = ask(r#"{"op":"clear","fault":"disk_full"}"#);
    assert_eq!(r["counts"]["writes_refused"], 1, "{r}");
    // The node's kill, sent by the helper.
    let mut node = Command::new("sleep")
        .arg("60")
        .process_group(0)
        .spawn()
        .unwrap();
    ask(&format!(r#"{{"op":"kill","pgid":{}}}"#, node.id()));
    assert_eq!(node.wait().unwrap().signal(), Some(libc::SIGKILL));
    eprintln!("disk-layer: ready {ready}, last reply {r}");
    // EOF: the lease's session is gone; the helper unmounts and ends.
    drop(input);
    assert!(helper.wait().unwrap().success());
    assert!(!mounted(), "still mounted after EOF");
}
