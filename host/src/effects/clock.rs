//! Clock skew with libfaketime.
//!
//! When the fault under test needs the `clock` capability, every node is
//! started with libfaketime preloaded and pointed at its own timestamp file
//! (`+0` at start). A skew rewrites that file (atomically, by rename);
//! `FAKETIME_NO_CACHE` makes the node read it on every clock call, so the
//! offset changes mid-run. Monotonic clocks are left alone
//! (`DONT_FAKE_MONOTONIC`), as a real wall-clock step would.
//!
//! Proof: the library must be mapped in every process of the node's group
//! (a static binary or one that bypasses libc cannot be skewed), and the
//! node's own clock, read through the campaign's `[clock]` probe, must show
//! the offset. A mapped library alone proves nothing (Go reads the clock
//! through the vDSO, past libc): without a probe, or with a process that
//! lacks the library, the effect is recorded `simulated`, never verified.

use super::{EffectRecord, Effects};
use crate::campaign::Vars;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
fn unloaded_member(pgid: i32) -> Result<Option<i32>, ()> {
    let members: Vec<i32> = crate::procfs::group_members(pgid)
        .into_iter()
        .filter(|&p| {
            crate::procfs::stat(nix::unistd::Pid::from_raw(p)).is_some_and(|s| s.state != 'Z')
        })
        .collect();
    if members.is_empty() {
        return Err(());
    }
    Ok(members
        .into_iter()
        .find(|&p| !crate::procfs::maps_library(p, "libfaketime")))
}

fn host_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Why a skew without a clock probe is only recorded.
const NO_PROBE: &str = "no [clock] probe in the campaign: the node's clock was never observed, and a mapped libfaketime alone does not show the node reads its clock through it; add [clock] probe_url (with probe_pointer to the node's Unix time in ms) or probe_header = \"Date\"";

/// Most a probe may differ from the requested offset, beyond its own
/// round trip.
const PROBE_TOLERANCE_MS: i64 = 250;
/// How long the host keeps probing for the offset to show.
const PROBE_DEADLINE: Duration = Duration::from_millis(300);

impl Effects {
    /// How coarse the probe's clock reading is: an HTTP date has whole
    /// seconds, a JSON probe milliseconds.
    fn clock_probe_resolution_ms(&self) -> i64 {
        let header = self
            .clock
            .as_ref()
            .and_then(|c| c.probe.as_ref()?.header.as_ref());
        if header.is_some() { 1000 } else { 0 }
    }

    /// The node's clock offset from the host's, by its probe, if the
    /// campaign has one: (offset, round trip), ms.
    async fn probe_offset(&self, index: u32) -> Option<Result<(i64, i64), String>> {
        let probe = self.clock.as_ref()?.probe.as_ref()?;
        let node = &self.nodes[index as usize];
        let url = Vars::client(node.client, index).render(&probe.url);
        let before = host_now_ms();
        let got = async {
            let resp = self
                .http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .map_err(|e| format!("clock probe {url}: {e}"))?;
            if let Some(h) = &probe.header {
                // An HTTP date (e.g. `Date`, which Go's net/http stamps
                // from its own clock): whole seconds only.
                let text = resp
                    .headers()
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| format!("clock probe {url}: no {h} header"))?;
                let t = httpdate::parse_http_date(text)
                    .map_err(|e| format!("clock probe {url}: {h} {text:?}: {e}"))?;
                return t
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .map_err(|e| format!("clock probe {url}: {h} {text:?}: {e}"));
            }
            let v: serde_json::Value = resp
                .json()
                .await
                .map_err(|e| format!("clock probe {url}: {e}"))?;
            v.pointer(&probe.pointer)
                .and_then(|x| x.as_i64().or_else(|| x.as_f64().map(|f| f as i64)))
                .ok_or_else(|| format!("clock probe {url}: no number at {} in {v}", probe.pointer))
        }
        .await;
        let after = host_now_ms();
        Some(got.map(|node_ms| (node_ms - (before + after) / 2, after - before)))
    }

    /// Probe the node until its clock shows `offset_ms` (libfaketime may
    /// take a moment to reread its file), or the deadline passes.
    async fn confirm_offset(
        &self,
        index: u32,
        offset_ms: i64,
        pid: nix::unistd::Pid,
    ) -> (bool, String) {
        let until = tokio::time::Instant::now() + PROBE_DEADLINE;
        let mut probes = 0;
        loop {
            probes += 1;
            match self.probe_offset(index).await {
                // Checked before the skew was applied.
                None => return (false, format!("{NO_PROBE} (pid {pid})")),
                Some(Ok((seen, rtt))) => {
                    let resolution = self.clock_probe_resolution_ms();
                    let slack = PROBE_TOLERANCE_MS + rtt + resolution;
                    if offset_ms.abs() <= slack {
                        // An unskewed clock would pass too: not evidence.
                        return (
                            false,
                            format!(
                                "an offset of {offset_ms:+} ms is within the probe's {slack} ms tolerance, so the probe cannot tell it from none (node clock probe: {seen:+} ms)"
                            ),
                        );
                    }
                    let ok = (seen - offset_ms).abs() <= slack;
                    if ok || tokio::time::Instant::now() >= until {
                        return (
                            ok,
                            format!(
                                "node clock probe: {seen:+} ms from the host's (rtt {rtt} ms, probe {probes})"
                            ),
                        );
                    }
                }
                Some(Err(e)) => {
                    if tokio::time::Instant::now() >= until {
                        return (false, e);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub async fn clock_offset(
        self: &Arc<Self>,
        index: u32,
        offset_ms: i64,
        ms: u32,
    ) -> Result<(), String> {
        let node = self.node(index)?.clone();
        if !node.alive() {
            return Err(format!(
                "node {index} is not running; its clock cannot be skewed"
            ));
        }
        if self.lease_open("clock", index) {
            return Err(format!(
                "node {index}'s clock is already skewed; wait for its lease to end"
            ));
        }
        let during_burst = self.burst_running();
        let start_us = self.now_us();
        let detail = format!("clock {offset_ms:+} ms for {ms} ms");
        let setup = self.clock.as_ref();
        let file = setup.and_then(|c| c.files.get(index as usize).cloned().flatten());
        let pgid = node.pid().as_raw();
        let remote = node.remote_host().map(|host| format!(
            "node {index} runs on remote host {}: chaos-host does not skew clocks on remote hosts (libfaketime's offset file would live there), so this skew is only recorded",
            host.spec.name
        ));
        let why = match (setup, &file) {
            _ if remote.is_some() => remote,
            (None, _) | (_, None) => Some("the host has no clock mechanism here: libfaketime is not installed (Debian: apt-get install libfaketime)".to_string()),
            (Some(c), Some(_)) => match unloaded_member(pgid) {
                Err(()) => Some(format!("node {index}'s process group {pgid} has no live process to skew")),
                Ok(Some(pid)) if pid == pgid => Some(format!(
                    "libfaketime is not loaded in node {index} (pid {pid}): a static binary, or one that bypasses libc's clock, cannot be skewed"
                )),
                Ok(Some(pid)) => Some(format!(
                    "libfaketime is not loaded in node {index}'s pid {pid} (process group {pgid}): that process's clock cannot be skewed (a static binary, or one started without the environment)"
                )),
                Ok(None) if c.probe.is_none() => Some(NO_PROBE.to_string()),
                Ok(None) => None,
            },
        };
        let (Some(file), None) = (file, why.as_ref()) else {
            let why = why.unwrap_or_default();
            self.push(EffectRecord {
                kind: "clock",
                node: index,
                detail,
                requested_ms: Some(ms as u64),
                start_us,
                end_us: Some(start_us),
                undone_us: None,
                verified: false,
                simulated: true,
                evidence: why,
                during_burst,
                finding: None,
            });
            return Ok(());
        };
        // Recorded before the file is written and before any await, so a
        // cancelled call still leaves a lease the host resets.
        let slot = self.push(EffectRecord {
            kind: "clock",
            node: index,
            detail,
            requested_ms: Some(ms as u64),
            start_us,
            end_us: None,
            undone_us: None,
            verified: false,
            simulated: false,
            evidence: String::new(),
            during_burst,
            finding: None,
        });
        self.remember(slot, |u| u.clock_file = Some(file.clone()));
        set_offset(&file, offset_ms).map_err(|e| format!("writing {}: {e}", file.display()))?;
        let (verified, evidence) = self.confirm_offset(index, offset_ms, node.pid()).await;
        self.update(slot, |r| {
            r.verified = verified;
            r.evidence = evidence;
        });
        self.schedule_end(slot, start_us, ms);
        Ok(())
    }

    /// Put node's clock back (lease end).
    pub(super) async fn reset_clock(&self, file: Option<PathBuf>, node: u32) -> String {
        let Some(file) = file else {
            return String::new();
        };
        if let Err(e) = set_offset(&file, 0) {
            return format!("resetting {}: {e}", file.display());
        }
        match self.probe_offset(node).await {
            // A server that caches its Date header until the cached second
            // has passed (hyper does) keeps showing the skewed time after a
            // backward jump: say so rather than suggest the reset failed.
            Some(Ok((seen, _))) if self.clock_probe_resolution_ms() > 0 => format!(
                "offset reset; probe {seen:+} ms (a server may keep its cached Date header until the skewed second passes)"
            ),
            Some(Ok((seen, _))) => format!("offset reset; probe {seen:+} ms"),
            Some(Err(e)) => format!("offset reset; {e}"),
            None => "offset reset".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
