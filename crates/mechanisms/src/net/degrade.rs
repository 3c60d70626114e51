//! Link faults over a cycle's network: which mechanism degrades the links
//! of a grudge, how the host measures them while the fault holds, and what
//! the system's own traffic met there.
//!
//! Proxy mode shapes in the link proxies ([`super::proxy`],
//! [`super::shape`]); the shaping lives in the host's own process, so a
//! killed host leaves nothing behind and there is nothing to journal.
//! Netns mode queues each degraded link's packets to a verdict loop in the
//! host ([`super::nfqueue`]), which delays, drops and rate-limits them
//! with the same [`super::shape::Shaper`]; a reset link answers its TCP
//! packets with RSTs. Loopback has no links to degrade.

use super::proxy::Measure;
use super::{CycleNet, Grudge, Inner, cut_links, nfqueue};
use chaos_model::contract::LinkFault;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the host's measurement of one degraded link showed.
#[derive(Clone, Debug)]
pub struct LinkCheck {
    pub from: u32,
    pub to: u32,
    /// The measurement shows every degradation asked for.
    pub shown: bool,
    pub detail: String,
}

/// Pings a loss probe sends: enough that a loss of 0.3 shows with
/// near certainty (0.7^20 < 0.1%), few enough to fit a short lease.
const LOSS_PINGS: usize = 20;
/// Pings a latency probe sends (the median is judged).
const LATENCY_PINGS: usize = 3;
/// A bandwidth probe echoes this long a stretch of the rate.
const BULK_SECONDS: f64 = 0.25;

impl CycleNet {
    /// Put `fault` in force on the links of `grudge`, replacing any link
    /// fault in force; returns its generation and what the mechanism said.
    pub async fn link(
        &self,
        grudge: &Grudge,
        fault: LinkFault,
        seed: u64,
    ) -> Result<(u64, String), String> {
        let mut current = self.shaped.lock().await;
        let installed = match &self.inner {
            Inner::Loopback => Err(
                "link: nodes run on plain loopback, where links cannot be degraded; set network.mode = \"proxy\" (no privileges) in the campaign, or pass --net proxy".to_string(),
            ),
            Inner::Proxy(links) => Ok(links.shape(grudge, fault, seed)),
            Inner::Remote(_) => Err(
                "link: link faults are not available on remote hosts (the link proxies run on the control node); run the nodes locally with network.mode = \"proxy\"".to_string(),
            ),
            Inner::Netns { ns, degraded, .. } => {
                let old = degraded.lock().unwrap_or_else(|e| e.into_inner()).take();
                let ns = ns.clone();
                let (grudge, fault) = (grudge.clone(), fault);
                // Set should this request be dropped before the install is
                // done: the install then lifts what it made itself.
                let cancelled = Cancelled::default();
                let flag = cancelled.0.clone();
                // Commands and a thread start: off the runtime's workers.
                let installed = tokio::task::spawn_blocking(move || {
                    drop(old); // lifted before the new fault goes in
                    nfqueue::Degraded::install(&ns, &grudge, fault, seed, &flag)
                })
                .await;
                cancelled.disarm();
                installed
                    .unwrap_or_else(|e| Err(format!("link: installing the fault panicked: {e}")))
                    .map(|(d, evidence)| {
                        *degraded.lock().unwrap_or_else(|e| e.into_inner()) = Some(d);
                        evidence
                    })
            }
        };
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        *current = generation;
        installed.map(|e| (generation, e))
    }

    /// Measure each link of `grudge` under link fault `generation`,
    /// within `budget`; empty when that fault is no longer in force.
    pub async fn measure_links(
        &self,
        generation: u64,
        grudge: &Grudge,
        fault: LinkFault,
        budget: Duration,
    ) -> Vec<LinkCheck> {
        let current = self.shaped.lock().await;
        if *current != generation {
            return vec![];
        }
        let pairs = cut_links(grudge);
        let pings = if fault.latency_ms > 0 {
            LATENCY_PINGS
        } else if fault.loss > 0.0 {
            LOSS_PINGS
        } else {
            1
        };
        let bulk = fault.bandwidth.map_or(0, |rate| {
            ((rate as f64 * BULK_SECONDS) as usize).clamp(2048, 1 << 20)
        });
        let measures = match &self.inner {
            Inner::Proxy(links) => {
                futures::future::join_all(
                    pairs
                        .iter()
                        .map(|&(from, to)| links.measure(from, to, pings, bulk, budget)),
                )
                .await
            }
            Inner::Netns { ns, degraded, .. } => {
                let Some(probe) = degraded
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_ref()
                    .map(|d| d.prober())
                else {
                    return vec![];
                };
                futures::future::join_all(
                    pairs
                        .iter()
                        .map(|&(from, to)| probe.measure(ns, from, to, pings, bulk, budget)),
                )
                .await
            }
            _ => return vec![],
        };
        measures
            .into_iter()
            .map(|m| {
                // The echo crosses the reverse link too: it adds its delay
                // when degraded as well.
                let ways = 1 + u32::from(pairs.contains(&(m.to, m.from)));
                judge(&m, fault, ways)
            })
            .collect()
    }

    /// Lift link fault `generation` (any when `None`); returns whether the
    /// system's own traffic met it on some degraded link, and the figures
    /// of each link.
    pub async fn unlink(&self, generation: Option<u64>) -> (bool, String) {
        let mut current = self.shaped.lock().await;
        if let Some(g) = generation
            && *current != g
        {
            return (
                true,
                "replaced by a later link fault before its lease ended".into(),
            );
        }
        *current = 0;
        // Each degraded link: (from, to, met by the system's traffic, figures).
        let nfqueue::Lifted {
            links: met,
            note,
            unproven,
        } = match &self.inner {
            Inner::Proxy(links) => nfqueue::Lifted {
                links: links
                    .unshape()
                    .iter()
                    .map(|(f, t, s)| (*f, *t, s.counts.touched(), s.counts.text()))
                    .collect(),
                note: None,
                unproven: None,
            },
            Inner::Netns { degraded, .. } => {
                let Some(d) = degraded.lock().unwrap_or_else(|e| e.into_inner()).take() else {
                    return (false, String::new());
                };
                match tokio::task::spawn_blocking(move || d.lift()).await {
                    Ok(l) => l,
                    Err(e) => return (false, format!("lifting the fault panicked: {e}")),
                }
            }
            _ => return (false, String::new()),
        };
        let touched = met.iter().any(|l| l.2);
        let mut text = format!(
            "lifted; the system's traffic met it on {} of {} link(s): {}",
            met.iter().filter(|l| l.2).count(),
            met.len(),
            met.iter()
                .map(|(f, t, _, figures)| format!("{f}->{t} {figures}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        if !touched {
            text.push_str(
                "; the system's traffic never crossed the degraded links, so the fault did nothing to it",
            );
        }
        if let Some(n) = note {
            text.push_str(&format!("; {n}"));
        }
        // A loop that died, erred or was bypassed degraded only part of
        // what crossed it: not proven, whatever it met.
        if let Some(why) = &unproven {
            text.push_str(&format!("; NOT proven: {why}"));
        }
        let touched = touched && unproven.is_none();
        (touched, text)
    }

    /// Lift the link fault at once, without waiting (cancelled cycles).
    pub fn unlink_now(&self) {
        match &self.inner {
            Inner::Proxy(links) => {
                links.unshape();
            }
            Inner::Netns { degraded, .. } => {
                let d = degraded.lock().unwrap_or_else(|e| e.into_inner()).take();
                drop(d); // lifts
            }
            _ => {}
        }
    }
}

/// Whether measurement `m` shows `fault` on its link, the echo crossing
/// `ways` degraded directions; with the figures.
pub fn judge(m: &Measure, fault: LinkFault, ways: u32) -> LinkCheck {
    let mut shown = m.error.is_none();
    let mut parts = Vec::new();
    if let Some(e) = &m.error {
        parts.push(e.clone());
    }
    if fault.reset {
        shown &= m.reset;
        parts.push(if m.reset {
            "probe connection reset".into()
        } else {
            "probe connection NOT reset".into()
        });
    } else if m.reset {
        shown = false;
        parts.push("probe connection closed unexpectedly".into());
    }
    if !fault.reset && fault.latency_ms > 0 {
        // What the echo should add: each degraded direction's latency plus
        // its mean jitter.
        let expected_us = u64::from(ways)
            * (u64::from(fault.latency_ms) * 1000 + u64::from(fault.jitter_ms) * 500);
        let mut sorted = m.rtt_us.clone();
        sorted.sort_unstable();
        match sorted.get(sorted.len() / 2) {
            Some(&median) => {
                // "Raised by at least half the requested latency".
                let ok = median * 2 >= expected_us;
                shown &= ok;
                parts.push(format!(
                    "probe rtt median {:.1} ms over {} ping(s) (expected {:.1} ms: {ways} degraded direction(s)){}",
                    median as f64 / 1000.0,
                    sorted.len(),
                    expected_us as f64 / 1000.0,
                    if ok { "" } else { ", NOT raised" }
                ));
            }
            None => {
                shown = false;
                parts.push("no probe round trip completed".into());
            }
        }
    }
    if !fault.reset && fault.loss > 0.0 {
        shown &= m.lost > 0;
        parts.push(format!(
            "{} probe {}(s) lost over {} ping(s){}",
            m.lost,
            if m.packets { "packet" } else { "chunk" },
            m.rtt_us.len(),
            if m.lost > 0 { "" } else { ", NO loss seen" }
        ));
    }
    if let (false, Some(rate)) = (fault.reset, fault.bandwidth) {
        match m.throughput {
            Some(t) => {
                let ok = t <= rate as f64 * 1.5;
                shown &= ok;
                parts.push(format!(
                    "probe throughput {t:.0} B/s (cap {rate} B/s){}",
                    if ok { "" } else { ", NOT capped" }
                ));
            }
            None => {
                shown = false;
                parts.push("no probe throughput measured".into());
            }
        }
    }
    LinkCheck {
        from: m.from,
        to: m.to,
        shown,
        detail: parts.join(", "),
    }
}

/// Set when dropped unless disarmed: tells a blocking install that the
/// request which started it is gone.
#[derive(Default)]
struct Cancelled(std::sync::Arc<std::sync::atomic::AtomicBool>, bool);

impl Cancelled {
    fn disarm(mut self) {
        self.1 = true;
    }
}

impl Drop for Cancelled {
    fn drop(&mut self) {
        if !self.1 {
            self.0.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

/// Measure a degraded link over connection `c` (opened at `started`):
/// up to `pings` one-byte round trips (stopping once `budget` is spent),
/// then, when `bulk` > 0, the rate at which `bulk` bytes come back. Never
/// past `budget`: the measurement holds the fault's lock, so an overrun
/// would lengthen the lease (a ping waiting on a retransmit after a real
/// loss can take a second). What was measured by then stands.
pub async fn ping_and_bulk(
    c: &mut TcpStream,
    pings: usize,
    bulk: usize,
    budget: Duration,
    started: Instant,
    m: &mut Measure,
) -> std::io::Result<()> {
    let left = budget.saturating_sub(started.elapsed());
    tokio::time::timeout(left, measure_on(c, pings, bulk, budget, started, m))
        .await
        .unwrap_or(Ok(()))
}

async fn measure_on(
    c: &mut TcpStream,
    pings: usize,
    bulk: usize,
    budget: Duration,
    started: Instant,
    m: &mut Measure,
) -> std::io::Result<()> {
    c.set_nodelay(true)?;
    let mut b = [0u8; 1];
    for i in 0..pings {
        let t = Instant::now();
        c.write_all(&[i as u8]).await?;
        c.read_exact(&mut b).await?;
        let rtt = t.elapsed();
        m.rtt_us.push(rtt.as_micros() as u64);
        // Another ping must fit in what is left of the budget.
        if started.elapsed() + rtt > budget {
            break;
        }
    }
    if bulk > 0 {
        let (mut r, mut w) = c.split();
        let send = async {
            let chunk = vec![0u8; 4096];
            let mut left = bulk;
            while left > 0 {
                let k = left.min(chunk.len());
                w.write_all(&chunk[..k]).await?;
                left -= k;
            }
            Ok::<_, std::io::Error>(())
        };
        // Timed from the first bytes back to the last, so neither the
        // latency nor the bucket's burst allowance (all in the first
        // read) counts as rate.
        let recv = async {
            let mut buf = vec![0u8; 16 * 1024];
            let mut got = 0;
            let mut first = None;
            while got < bulk {
                match r.read(&mut buf).await? {
                    0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    n => got += n,
                }
                first.get_or_insert((Instant::now(), got));
            }
            Ok(first.map(|(at, n)| (got - n) as f64 / at.elapsed().as_secs_f64()))
        };
        let ((), rate) = tokio::try_join!(send, recv)?;
        m.throughput = rate.filter(|r| r.is_finite());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault() -> LinkFault {
        LinkFault {
            latency_ms: 200,
            jitter_ms: 0,
            loss: 0.0,
            bandwidth: None,
            reset: false,
        }
    }

    #[test]
    fn a_link_whose_rtt_was_not_raised_is_not_shown() {
        let slow = Measure {
            rtt_us: vec![201_000, 199_500, 230_000],
            ..Measure::default()
        };
        assert!(judge(&slow, fault(), 1).shown);
        // Two degraded directions: 200 ms is only half of the 400 expected.
        assert!(judge(&slow, fault(), 2).shown);
        let fast = Measure {
            rtt_us: vec![120, 90, 99_000],
            ..Measure::default()
        };
        let c = judge(&fast, fault(), 1);
        assert!(!c.shown, "{}", c.detail);
        assert!(c.detail.contains("NOT raised"), "{}", c.detail);
    }

    #[test]
    fn loss_bandwidth_and_reset_each_need_their_own_evidence() {
        let lossy = LinkFault {
            latency_ms: 0,
            loss: 0.3,
            ..fault()
        };
        let m = Measure {
            rtt_us: vec![100; 20],
            ..Measure::default()
        };
        assert!(!judge(&m, lossy, 1).shown);
        assert!(
            judge(
                &Measure {
                    lost: 3,
                    ..m.clone()
                },
                lossy,
                1
            )
            .shown
        );
        let capped = LinkFault {
            latency_ms: 0,
            bandwidth: Some(100_000),
            ..fault()
        };
        let fast = Measure {
            throughput: Some(3e8),
            ..m.clone()
        };
        assert!(!judge(&fast, capped, 1).shown);
        let slow = Measure {
            throughput: Some(95_000.0),
            ..m.clone()
        };
        assert!(judge(&slow, capped, 1).shown);
        let reset = LinkFault {
            latency_ms: 0,
            reset: true,
            ..fault()
        };
        assert!(!judge(&m, reset, 1).shown);
        assert!(judge(&Measure { reset: true, ..m }, reset, 1).shown);
    }
}
