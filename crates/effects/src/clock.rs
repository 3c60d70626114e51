//! Clock skew and drift, as leases on a node's wall clock.
//!
//! The mechanism is the vDSO redirected ([`vdso`]): at the skew, every
//! process of the node's group is patched (once) and its offset slot set;
//! during the lease the group is polled for processes that appeared since
//! (exec'd children are patched, forked ones inherit the patch and get the
//! offset written again); at the end every slot is set back to zero (the
//! patch stays; a node started again has none). A skew shows at once and is
//! verified through the campaign's `[clock]` probe; a drift (ppm) is
//! measured by the probe at the lease end against ppm * elapsed.
//!
//! The host journals no entry of its own for a skew: the patched processes
//! are the node's process group, which lifecycle journals and starts with
//! PR_SET_PDEATHSIG=SIGKILL, so a SIGKILLed engine leaves none running.
//!
//! Fallback where ptrace is refused ([`vdso::refusal`]): nodes are started
//! with libfaketime preloaded and a timestamp file each, the skew rewrites
//! the file, and the effect is recorded `simulated` with the reason
//! ("fallback: libfaketime (...)"), since the library changes the node
//! beyond its clock (absolute sleeps fail in Python under
//! `DONT_FAKE_MONOTONIC`) and Go ignores it. Drift has no fallback.
//!
//! A skew without a probe, or that the probe cannot tell from none, is not
//! verified: the cycle is `ineffective`, never green.
//!
//! A node on a remote host is skewed there, by the same code: chaos-host's
//! binary, uploaded to the host for the run, runs `clock-lease`
//! ([`lease_main`]) over SSH, which patches the group, writes the slots,
//! watches for newcomers and resets at the lease end ([`chaos_mechanisms::clock::remote`]).
//! The probe verifies it over the network. A host where the helper cannot
//! run, or ptrace is refused, gets the skew recorded `simulated` with the
//! reason (no libfaketime fallback there).

use super::{EffectRecord, Effects};
use crate::kind::Kind;
use crate::lease::{ClockHeld, ClockWatch, Lease};
use chaos_mechanisms::clock::{
    GROUP_POLL, apply_to_group, host_now_ms, set_offset, unloaded_member, vdso,
};
use chaos_model::campaign::Vars;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// A skew's lease as [`Effects::finish_skew`] completes it.
struct Skewed {
    slot: usize,
    index: u32,
    pid: nix::unistd::Pid,
    step_ms: i64,
    ppm: i64,
    ms: u32,
    start_us: u64,
}

/// Why a skew without a clock probe is only recorded.
const NO_PROBE: &str = "no [clock] probe in the campaign: the node's clock was never observed, and a mapped libfaketime alone does not show the node reads its clock through it; add [clock] probe_url (with probe_pointer to the node's Unix time in ms) or probe_header = \"Date\"";

/// Most a probe may differ from the requested offset, beyond its own
/// round trip.
const PROBE_TOLERANCE_MS: i64 = 250;
/// How long the host keeps probing for the offset to show.
const PROBE_DEADLINE: Duration = Duration::from_millis(300);

/// A clock lease's record as it opens: its evidence comes with the
/// verification.
fn clock_record(
    index: u32,
    detail: String,
    ms: u32,
    start_us: u64,
    during_burst: bool,
) -> EffectRecord {
    EffectRecord::lease(
        Kind::Clock,
        index,
        detail,
        Some(ms as u64),
        start_us,
        during_burst,
        String::new(),
    )
}

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

    /// Probe the node until its clock shows `offset_ms` (a server may cache
    /// its clock reading, libfaketime rereads its file), or the deadline
    /// passes.
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
        chaos_model::bounds::offset(offset_ms)?;
        chaos_model::bounds::lease("clock-offset", ms)?;
        self.skew(index, offset_ms, 0, ms).await
    }

    /// Let node `index`'s wall clock run `ppm` millionths fast (slow when
    /// negative) for `ms`.
    pub async fn clock_drift(
        self: &Arc<Self>,
        index: u32,
        ppm: i32,
        ms: u32,
    ) -> Result<(), String> {
        chaos_model::bounds::drift(ppm)?;
        chaos_model::bounds::lease("clock-drift", ms)?;
        if ppm == 0 {
            return Err("clock-drift: ppm 0 is no drift; ask for a rate, e.g. 200000 (the clock runs 20 % fast)".into());
        }
        self.skew(index, 0, ppm as i64, ms).await
    }

    /// A record of a skew that could not be applied, with the reason.
    fn simulated_skew(&self, index: u32, detail: String, ms: u32, why: String) {
        let start_us = self.now_us();
        self.push(EffectRecord {
            end_us: Some(start_us),
            simulated: true,
            ..EffectRecord::lease(
                Kind::Clock,
                index,
                detail,
                Some(ms as u64),
                start_us,
                self.burst_running(),
                why,
            )
        });
    }

    async fn skew(
        self: &Arc<Self>,
        index: u32,
        step_ms: i64,
        ppm: i64,
        ms: u32,
    ) -> Result<(), String> {
        let node = self.node(index)?.clone();
        if !node.alive() {
            return Err(format!(
                "node {index} is not running; its clock cannot be skewed"
            ));
        }
        if self.lease_open(Kind::Clock, index) {
            return Err(format!(
                "node {index}'s clock is already skewed or drifting{}; one clock lease per node at a time: wait for its lease to end",
                self.holder(Kind::Clock, index)
            ));
        }
        // Held until the lease is recorded: patching awaits, and another
        // plugin's request must not pass the check above meanwhile.
        let Some(_claim) = self.claim(Kind::Clock, index) else {
            return Err(format!(
                "node {index}'s clock is being skewed by another request right now; one clock lease per node at a time"
            ));
        };
        let detail = if ppm == 0 {
            format!("clock {step_ms:+} ms for {ms} ms")
        } else {
            format!("clock drift {ppm:+} ppm for {ms} ms")
        };
        let Some(setup) = self.clock.as_ref() else {
            self.simulated_skew(
                index,
                detail,
                ms,
                "the host set up no clock mechanism for this class (it does not declare `clock`)"
                    .into(),
            );
            return Ok(());
        };
        if let Some(host) = node.remote_host() {
            if setup.probe.is_none() {
                self.simulated_skew(index, detail, ms, NO_PROBE.to_string());
                return Ok(());
            }
            // This machine's ptrace and libfaketime do not matter there.
            let host = host.clone();
            return self
                .remote_skew(&host, index, step_ms, ppm, ms, detail)
                .await;
        }
        if let Some(why) = &setup.fallback {
            if ppm != 0 {
                let why = format!("drift needs vDSO patching: {why}");
                self.simulated_skew(index, detail, ms, why);
                return Ok(());
            }
            return self.faketime_offset(index, step_ms, ms, why).await;
        }
        if setup.probe.is_none() {
            // Nobody would see it: recorded, not applied.
            self.simulated_skew(index, detail, ms, NO_PROBE.to_string());
            return Ok(());
        }
        let during_burst = self.burst_running();
        let start_us = self.now_us();
        let pgid = node.pid().as_raw();
        // The drift's zero: t0 (the node's monotonic clock) and the host's
        // instant for measuring it, taken together.
        let since = tokio::time::Instant::now();
        let skew = vdso::Skew {
            step_ns: step_ms.saturating_mul(1_000_000),
            ppm,
            t0_ns: vdso::monotonic_ns(),
        };
        // The patch itself (ptrace) runs in the helper; the offset is one
        // write per process.
        let applied = tokio::task::spawn_blocking(move || apply_to_group(pgid, skew))
            .await
            .map_err(|e| format!("patching node {index}'s clock: {e}"))?;
        if applied.set.is_empty() {
            let why = if applied.failed.is_empty() {
                format!("node {index}'s process group {pgid} has no live process to skew")
            } else {
                format!(
                    "vDSO not patched in node {index} (process group {pgid}): {}",
                    applied.failed.join("; ")
                )
            };
            self.simulated_skew(index, detail, ms, why);
            return Ok(());
        }
        // Recorded before any further await, so a cancelled call still
        // leaves a lease the host resets.
        // Processes that appear during the lease (exec'd children) are
        // patched too; forked ones get the current offset written again.
        let late = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stopped = Arc::new(std::sync::Mutex::new(false));
        let watch = {
            let (late, stopped) = (late.clone(), stopped.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(GROUP_POLL).await;
                    let stopped = stopped.clone();
                    let r = tokio::task::spawn_blocking(move || {
                        let s = stopped.lock().unwrap_or_else(|e| e.into_inner());
                        (!*s).then(|| apply_to_group(pgid, skew))
                    })
                    .await;
                    match r {
                        Ok(Some(r)) => {
                            late.fetch_add(r.newly, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(None) => return,
                        Err(_) => {}
                    }
                }
            })
        };
        let slot = self.open(
            clock_record(index, detail, ms, start_us, during_burst),
            Lease::Clock(ClockHeld {
                group: Some(pgid),
                watch: Some(ClockWatch {
                    task: watch.abort_handle(),
                    late,
                    stopped,
                }),
                drift: (ppm != 0).then_some((ppm, since)),
                ..ClockHeld::default()
            }),
        );
        let patched = format!(
            "vDSO patched in {} process(es) of group {pgid} ({} newly)",
            applied.set.len(),
            applied.newly
        );
        let skew = Skewed {
            slot,
            index,
            pid: node.pid(),
            step_ms,
            ppm,
            ms,
            start_us,
        };
        self.finish_skew(skew, patched, &applied.failed).await;
        Ok(())
    }

    /// The end of a skew's set-up, local or on a remote host: the offset
    /// confirmed through the node's clock probe (a drift shows only as time
    /// passes: measured at the lease end), the record completed, the lease
    /// scheduled. `patched` says where and how many processes; `failed`,
    /// those that could not be patched (any leaves the skew unverified).
    async fn finish_skew(self: &Arc<Self>, k: Skewed, patched: String, failed: &[String]) {
        let mut evidence = patched;
        if !failed.is_empty() {
            evidence.push_str(&format!("; not patched: {}", failed.join("; ")));
        }
        let verified = if k.ppm != 0 {
            evidence.push_str("; drift measured at the lease end");
            failed.is_empty()
        } else {
            let (ok, seen) = self.confirm_offset(k.index, k.step_ms, k.pid).await;
            evidence.push_str("; ");
            evidence.push_str(&seen);
            ok && failed.is_empty()
        };
        self.update(k.slot, |r| {
            r.verified = verified;
            r.evidence = evidence;
        });
        self.schedule_end(k.slot, k.start_us, k.ms);
    }

    /// A skew of a node on a remote host: the uploaded chaos-host's
    /// `clock-lease` patches and holds it there (see [`lease_main`]); the
    /// probe verifies it over the network as for a local node.
    async fn remote_skew(
        self: &Arc<Self>,
        host: &Arc<chaos_ssh::Host>,
        index: u32,
        step_ms: i64,
        ppm: i64,
        ms: u32,
        detail: String,
    ) -> Result<(), String> {
        let node = self.node(index)?.clone();
        let during_burst = self.burst_running();
        let pgid = node.pid().as_raw();
        let name = host.spec.name.clone();
        let step_ns = step_ms.saturating_mul(1_000_000);
        let (h, journal) = (host.clone(), self.journal.clone());
        let started = tokio::task::spawn_blocking(move || {
            let bin = h
                .clock_helper(&journal)
                .map_err(|e| format!("no chaos-host helper on the host: {e}"))?;
            chaos_mechanisms::clock::remote::ClockLease::start(&h, &bin, pgid, step_ns, ppm)
                .map(|(lease, report)| (bin, lease, report))
        })
        .await
        .map_err(|e| format!("skewing node {index}'s clock on host {name}: {e}"))?;
        let on = format!("node {index} on remote host {name} (process group {pgid})");
        let (bin, lease, report) = match started {
            Ok(s) => s,
            Err(e) => {
                self.simulated_skew(index, detail, ms, format!("{on}: {e}"));
                return Ok(());
            }
        };
        // The lease runs from when the helper set the offset there (the
        // session that started it may have taken a second): its record,
        // its length and a drift's zero all count from then.
        let age = Duration::from_nanos(report.t0_age_ns.max(0) as u64);
        let since = tokio::time::Instant::now()
            .checked_sub(age)
            .unwrap_or_else(tokio::time::Instant::now);
        let start_us = self.now_us().saturating_sub(age.as_micros() as u64);
        if report.refused.is_some() || report.set == 0 {
            let on = format!("{on}, helper {bin}");
            let why = match (&report.refused, report.failed.is_empty()) {
                (Some(r), _) => format!("{on}: {r}"),
                (None, true) => format!("{on}: the process group has no live process to skew"),
                (None, false) => format!("{on}: vDSO not patched: {}", report.failed.join("; ")),
            };
            // Nothing set: the lease ends at once (its reset is a no-op).
            let _ = tokio::task::spawn_blocking(move || lease.end()).await;
            self.simulated_skew(index, detail, ms, why);
            return Ok(());
        }
        // Recorded before any further await, so a cancelled call still
        // leaves a lease the host ends.
        let slot = self.open(
            clock_record(index, detail, ms, start_us, during_burst),
            Lease::Clock(ClockHeld {
                remote: Some(lease),
                drift: (ppm != 0).then_some((ppm, since)),
                ..ClockHeld::default()
            }),
        );
        let patched = format!(
            "on host {name} by {bin}: vDSO patched in {} process(es) of group {pgid} ({} newly)",
            report.set, report.newly
        );
        let skew = Skewed {
            slot,
            index,
            pid: node.pid(),
            step_ms,
            ppm,
            ms,
            start_us,
        };
        self.finish_skew(skew, patched, &report.failed).await;
        Ok(())
    }

    /// The labelled fallback where ptrace is refused: libfaketime, preloaded
    /// at spawn. Recorded `simulated` even when the probe shows the offset:
    /// the library changes the node beyond its clock (Python's absolute
    /// sleeps fail under it) and misses Go entirely.
    async fn faketime_offset(
        self: &Arc<Self>,
        index: u32,
        offset_ms: i64,
        ms: u32,
        refused: &str,
    ) -> Result<(), String> {
        let node = self.node(index)?.clone();
        let during_burst = self.burst_running();
        let start_us = self.now_us();
        let detail = format!("clock {offset_ms:+} ms for {ms} ms");
        let setup = self.clock.as_ref();
        let file = setup.and_then(|c| c.files.get(index as usize).cloned().flatten());
        let pgid = node.pid().as_raw();
        let label = format!("fallback: libfaketime ({refused})");
        let why = match (setup, &file) {
            (None, _) | (_, None) => Some(format!(
                "{label}: libfaketime is not installed (Debian: apt-get install libfaketime)"
            )),
            (Some(c), Some(_)) => match unloaded_member(pgid) {
                Err(()) => Some(format!(
                    "node {index}'s process group {pgid} has no live process to skew"
                )),
                Ok(Some(pid)) if pid == pgid => Some(format!(
                    "{label}: libfaketime is not loaded in node {index} (pid {pid}): a static binary, or one that bypasses libc's clock, cannot be skewed"
                )),
                Ok(Some(pid)) => Some(format!(
                    "{label}: libfaketime is not loaded in node {index}'s pid {pid} (process group {pgid}): that process's clock cannot be skewed (a static binary, or one started without the environment)"
                )),
                Ok(None) if c.probe.is_none() => Some(format!("{label}; {NO_PROBE}")),
                Ok(None) => None,
            },
        };
        let (Some(file), None) = (file, why.as_ref()) else {
            self.simulated_skew(index, detail, ms, why.unwrap_or_default());
            return Ok(());
        };
        let slot = self.open(
            EffectRecord {
                simulated: true,
                ..clock_record(index, detail, ms, start_us, during_burst)
            },
            Lease::Clock(ClockHeld {
                file: Some(file.clone()),
                ..ClockHeld::default()
            }),
        );
        set_offset(&file, offset_ms).map_err(|e| format!("writing {}: {e}", file.display()))?;
        let (verified, evidence) = self.confirm_offset(index, offset_ms, node.pid()).await;
        self.update(slot, |r| {
            r.verified = verified;
            r.evidence = format!("{label}; {evidence}");
        });
        self.schedule_end(slot, start_us, ms);
        Ok(())
    }

    /// End a clock lease: measure a drift, put the clock back. The
    /// evidence, and for a drift whether the probe showed its rate.
    pub(super) async fn end_clock(&self, mut undo: ClockHeld, node: u32) -> (String, Option<bool>) {
        if let Some(w) = &undo.watch {
            w.task.abort();
        }
        let mut evidence = String::new();
        let mut verified = None;
        if let Some((ppm, since)) = undo.drift {
            let (ok, seen) = self.measure_drift(node, ppm, since).await;
            evidence = seen;
            verified = Some(ok);
        }
        if let Some(w) = &undo.watch {
            let n = w.late.load(std::sync::atomic::Ordering::Relaxed);
            if n > 0 {
                evidence.push_str(&format!(
                    "{}{n} process(es) patched during the lease",
                    if evidence.is_empty() { "" } else { "; " }
                ));
            }
        }
        let reset = if let Some(lease) = undo.remote.take() {
            match tokio::task::spawn_blocking(move || lease.end()).await {
                Ok(Ok(r)) => {
                    if r.late > 0 {
                        if !evidence.is_empty() {
                            evidence.push_str("; ");
                        }
                        evidence.push_str(&format!(
                            "{} process(es) patched on the host during the lease",
                            r.late
                        ));
                    }
                    if r.failed.is_empty() {
                        self.reset_probe(node).await
                    } else {
                        format!("offset reset, except: {}", r.failed.join("; "))
                    }
                }
                Ok(Err(e)) => format!("resetting the offset: {e}"),
                Err(e) => format!("resetting the offset: {e}"),
            }
        } else if let Some(pgid) = undo.group {
            let stopped = undo.watch.as_ref().map(|w| w.stopped.clone());
            let r = tokio::task::spawn_blocking(move || {
                ClockWatch::stop_then(stopped.as_ref(), || {
                    apply_to_group(pgid, vdso::Skew::default())
                })
            })
            .await;
            match r {
                Ok(r) if r.failed.is_empty() => self.reset_probe(node).await,
                Ok(r) => format!("offset reset, except: {}", r.failed.join("; ")),
                Err(e) => format!("resetting the offset: {e}"),
            }
        } else {
            self.reset_clock(undo.file.take(), node).await
        };
        if !reset.is_empty() {
            if !evidence.is_empty() {
                evidence.push_str("; ");
            }
            evidence.push_str(&reset);
        }
        (evidence, verified)
    }

    /// The probe's offset against the drift's expected one (ppm times the
    /// time since it started).
    async fn measure_drift(
        &self,
        node: u32,
        ppm: i64,
        since: tokio::time::Instant,
    ) -> (bool, String) {
        let elapsed = since.elapsed().as_millis() as i64;
        let expected = elapsed * ppm / 1_000_000;
        match self.probe_offset(node).await {
            None => (false, NO_PROBE.to_string()),
            Some(Err(e)) => (false, e),
            Some(Ok((seen, rtt))) => {
                let slack = PROBE_TOLERANCE_MS + rtt + self.clock_probe_resolution_ms();
                let rate = if elapsed > 0 {
                    seen * 1_000_000 / elapsed
                } else {
                    0
                };
                let figures = format!(
                    "drift: node clock probe {seen:+} ms after {elapsed} ms, expected {expected:+} ms (measured {rate:+} ppm, asked {ppm:+} ppm; rtt {rtt} ms)"
                );
                if expected.abs() <= slack {
                    return (
                        false,
                        format!(
                            "{figures}: within the probe's {slack} ms tolerance, so the probe cannot tell it from none"
                        ),
                    );
                }
                ((seen - expected).abs() <= slack, figures)
            }
        }
    }

    /// After a reset, what the probe shows.
    async fn reset_probe(&self, node: u32) -> String {
        match self.probe_offset(node).await {
            Some(Ok((seen, _))) if self.clock_probe_resolution_ms() > 0 => format!(
                "offset reset; probe {seen:+} ms (a server may keep its cached Date header until the skewed second passes)"
            ),
            Some(Ok((seen, _))) => format!("offset reset; probe {seen:+} ms"),
            Some(Err(e)) => format!("offset reset; {e}"),
            None => "offset reset".into(),
        }
    }

    /// Put node's clock back (lease end of the libfaketime fallback).
    pub(super) async fn reset_clock(&self, file: Option<PathBuf>, node: u32) -> String {
        let Some(file) = file else {
            return String::new();
        };
        if let Err(e) = set_offset(&file, 0) {
            return format!("resetting {}: {e}", file.display());
        }
        self.reset_probe(node).await
    }
}
