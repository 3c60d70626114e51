//! Link shaping: when each chunk (proxy mode) or packet (netns mode, the
//! NFQUEUE verdict loop) of a degraded directed link may be delivered.
//!
//! Written by hand rather than taken from a crate: what is needed is a
//! schedule (an instant per chunk) that the proxy's own writer sleeps to,
//! with a loss model that stalls instead of dropping (TCP cannot lose bytes
//! inside a stream). Rate-limiting crates (e.g. `governor`) hand out
//! permits, not delivery instants with per-stream order, so they would
//! still need this module around them.
//!
//! - **Latency and jitter**: each chunk is due `latency + U[0, jitter]`
//!   after it was read, never before the chunk read before it on the same
//!   stream (a delay queue keeps order per connection, as TCP does).
//! - **Loss**: with probability `loss` a chunk is "lost" and stalls for
//!   [`LOSS_STALL`] on top, the retransmit timeout a real loss costs a TCP
//!   sender; everything after it on that stream waits too (head-of-line
//!   blocking). A lost packet is dropped instead, and the kernel's TCP
//!   retransmits it. Lost chunks and packets are counted.
//! - **Bandwidth**: a token bucket per directed link, shared by all its
//!   connections, holding at most [`BUCKET_MS`] of the rate: a chunk is due
//!   once the bucket could pay for it. The host's probe has a bucket of its
//!   own at the same rate.

use chaos_model::contract::LinkFault;
use rand::{Rng, SeedableRng};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The stall a lost chunk costs: the minimum TCP retransmit timeout Linux
/// uses (`TCP_RTO_MIN`), which is what a dropped segment on a quiet
/// connection waits before it is sent again.
pub const LOSS_STALL: Duration = Duration::from_millis(200);

/// How much of the rate the bucket holds when full (a burst allowance).
pub const BUCKET_MS: u64 = 20;

/// What one degraded directed link did to the system's traffic.
#[derive(Default)]
pub struct Counts {
    pub chunks: AtomicU64,
    pub bytes: AtomicU64,
    /// Sum of the delays given, µs.
    pub delay_us: AtomicU64,
    pub lost: AtomicU64,
    /// Connections reset (open ones at the start, refused new ones).
    pub resets: AtomicU64,
}

impl Counts {
    /// The figures of stream chunks (proxy mode).
    pub fn text(&self) -> String {
        self.text_of("chunk")
    }

    /// The figures, counting `unit`s ("chunk" in the proxies, "packet" in
    /// the NFQUEUE verdict loop).
    pub fn text_of(&self, unit: &str) -> String {
        let chunks = self.chunks.load(Ordering::Relaxed);
        let mean = self
            .delay_us
            .load(Ordering::Relaxed)
            .checked_div(chunks)
            .unwrap_or(0);
        format!(
            "{chunks} {unit}(s) ({} bytes) delayed {} µs on average, {} lost, {} connection(s) reset",
            self.bytes.load(Ordering::Relaxed),
            mean,
            self.lost.load(Ordering::Relaxed),
            self.resets.load(Ordering::Relaxed),
        )
    }

    /// Something of the system's own traffic met the fault.
    pub fn touched(&self) -> bool {
        self.chunks.load(Ordering::Relaxed) + self.resets.load(Ordering::Relaxed) > 0
    }
}

/// The shaping of one degraded directed link.
pub struct Shaper {
    pub fault: LinkFault,
    bucket: Option<Mutex<Bucket>>,
    /// The host's probes pay from a bucket of their own at the same rate:
    /// sharing the system's, a probe would both steal the system's
    /// bandwidth during the fault and measure only its share of the cap.
    probe_bucket: Option<Mutex<Bucket>>,
    rng: Mutex<rand::rngs::SmallRng>,
    /// The system's traffic...
    pub counts: Counts,
    /// ...and the host's probes, counted apart.
    pub probe: Counts,
}

impl Shaper {
    pub fn new(fault: LinkFault, seed: u64) -> Self {
        Self {
            bucket: fault.bandwidth.map(|rate| Mutex::new(Bucket::new(rate))),
            probe_bucket: fault.bandwidth.map(|rate| Mutex::new(Bucket::new(rate))),
            fault,
            rng: Mutex::new(rand::rngs::SmallRng::seed_from_u64(seed)),
            counts: Counts::default(),
            probe: Counts::default(),
        }
    }

    /// Largest chunk worth reading at once: about one bucket's worth when
    /// the rate is capped (so a slow link trickles instead of bursting
    /// 16 KiB at a time), else `max`.
    pub fn chunk_limit(&self, max: usize) -> usize {
        match self.fault.bandwidth {
            Some(rate) => (rate.saturating_mul(BUCKET_MS) / 1000).clamp(256, max as u64) as usize,
            None => max,
        }
    }

    /// When a chunk of `n` bytes read at `now` is due, given when the
    /// previous chunk of its stream was due (`after`). Counts it into
    /// `counts` when given (the system's traffic, not a probe's). A lost
    /// chunk stalls for [`LOSS_STALL`]: bytes inside a stream cannot vanish.
    pub fn due(&self, now: Instant, n: usize, after: Instant, counts: Option<&Counts>) -> Instant {
        self.decide(now, n, after, counts, Loss::Stall)
            .expect("a stalled chunk is still delivered")
    }

    /// When a packet of `n` bytes queued at `now` may go, given when the
    /// packet queued before it on its link went (`after`); `None` when it
    /// is lost: the verdict loop drops it and TCP sends it again, as after
    /// a real loss. A packet that `may_lose` nothing is only delayed.
    pub fn packet_due(
        &self,
        now: Instant,
        n: usize,
        after: Instant,
        counts: &Counts,
        may_lose: bool,
    ) -> Option<Instant> {
        let loss = if may_lose { Loss::Drop } else { Loss::Spare };
        self.decide(now, n, after, Some(counts), loss)
    }

    fn decide(
        &self,
        now: Instant,
        n: usize,
        after: Instant,
        counts: Option<&Counts>,
        loss: Loss,
    ) -> Option<Instant> {
        let (jitter, lost) = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            let jitter = match self.fault.jitter_ms {
                0 => Duration::ZERO,
                j => Duration::from_micros(rng.random_range(0..=u64::from(j) * 1000)),
            };
            (
                jitter,
                self.fault.loss > 0.0 && rng.random_bool(self.fault.loss),
            )
        };
        let lost = lost && loss != Loss::Spare;
        if lost && loss == Loss::Drop {
            if let Some(c) = counts {
                c.chunks.fetch_add(1, Ordering::Relaxed);
                c.bytes.fetch_add(n as u64, Ordering::Relaxed);
                c.lost.fetch_add(1, Ordering::Relaxed);
            }
            // A dropped packet never crosses the link: it pays no tokens.
            return None;
        }
        let mut at = now + Duration::from_millis(self.fault.latency_ms.into()) + jitter;
        if lost {
            at += LOSS_STALL;
        }
        let probe = counts.is_some_and(|c| std::ptr::eq(c, &self.probe));
        let bucket = if probe {
            &self.probe_bucket
        } else {
            &self.bucket
        };
        if let Some(b) = bucket {
            at = at.max(b.lock().unwrap_or_else(|e| e.into_inner()).pay(now, n));
        }
        let at = at.max(after);
        if let Some(c) = counts {
            c.chunks.fetch_add(1, Ordering::Relaxed);
            c.bytes.fetch_add(n as u64, Ordering::Relaxed);
            c.delay_us
                .fetch_add((at - now).as_micros() as u64, Ordering::Relaxed);
            if lost {
                c.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
        Some(at)
    }
}

/// What a loss does: a proxy's chunk stalls (a stream cannot lose bytes),
/// a queued packet is dropped, a spared one is not lost at all.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loss {
    Stall,
    Drop,
    Spare,
}

/// A token bucket in bytes; the balance may go negative, which is the
/// wait of whoever comes next.
struct Bucket {
    rate: f64,
    cap: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u64) -> Self {
        let cap = (rate as f64 * BUCKET_MS as f64 / 1000.0).max(1.0);
        Self {
            rate: rate as f64,
            cap,
            tokens: cap,
            at: Instant::now(),
        }
    }

    /// Take `n` bytes of tokens at `now`; returns when they are paid for.
    fn pay(&mut self, now: Instant, n: usize) -> Instant {
        if now > self.at {
            let earned = (now - self.at).as_secs_f64() * self.rate;
            self.tokens = (self.tokens + earned).min(self.cap);
            self.at = now;
        }
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            now
        } else {
            self.at + Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(latency_ms: u32, jitter_ms: u32) -> LinkFault {
        LinkFault {
            latency_ms,
            jitter_ms,
            loss: 0.0,
            bandwidth: None,
            reset: false,
        }
    }

    #[test]
    fn chunks_are_due_after_latency_within_jitter_and_in_order() {
        let s = Shaper::new(fault(100, 50), 7);
        let t0 = Instant::now();
        let mut last = t0;
        let counts = Counts::default();
        let mut spread = (Duration::MAX, Duration::ZERO);
        for i in 0..500u32 {
            let now = t0 + Duration::from_micros(i.into());
            let at = s.due(now, 10, last, Some(&counts));
            assert!(at >= last, "chunk {i} overtook the one before it");
            let d = at - now;
            assert!(d >= Duration::from_millis(100), "{d:?}");
            spread = (spread.0.min(d), spread.1.max(d));
            last = at;
        }
        // Jitter is drawn, not constant: the delays spread over the range.
        assert!(
            spread.1 - spread.0 > Duration::from_millis(30),
            "{spread:?}"
        );
        assert!(spread.1 <= Duration::from_millis(151), "{spread:?}");
        assert_eq!(counts.chunks.load(Ordering::Relaxed), 500);
    }

    #[test]
    fn a_lost_chunk_stalls_for_the_retransmit_timeout_and_is_counted() {
        let s = Shaper::new(
            LinkFault {
                loss: 1.0,
                ..fault(0, 0)
            },
            1,
        );
        let now = Instant::now();
        let counts = Counts::default();
        assert_eq!(s.due(now, 1, now, Some(&counts)), now + LOSS_STALL);
        assert_eq!(counts.lost.load(Ordering::Relaxed), 1);
        // A packet is dropped instead, counted, and pays nothing.
        let packets = Counts::default();
        assert_eq!(s.packet_due(now, 1500, now, &packets, true), None);
        assert_eq!(packets.lost.load(Ordering::Relaxed), 1);
        assert_eq!(packets.delay_us.load(Ordering::Relaxed), 0);
        // A spared one goes, unstalled.
        assert_eq!(s.packet_due(now, 1500, now, &packets, false), Some(now));
        assert_eq!(packets.lost.load(Ordering::Relaxed), 1);
        // No loss asked: never stalled.
        let s = Shaper::new(fault(5, 0), 1);
        for _ in 0..100 {
            assert_eq!(s.due(now, 1, now, None), now + Duration::from_millis(5));
        }
    }

    #[test]
    fn the_bucket_holds_a_link_to_its_rate() {
        let rate = 100_000u64; // bytes/s
        let s = Shaper::new(
            LinkFault {
                bandwidth: Some(rate),
                ..fault(0, 0)
            },
            1,
        );
        let t0 = Instant::now();
        // 1 MB offered at once: due when 10 s of rate (less the burst
        // allowance) has passed.
        let mut at = t0;
        for _ in 0..1000 {
            at = s.due(t0, 1000, at, None);
        }
        let took = (at - t0).as_secs_f64();
        let cap = (rate * BUCKET_MS / 1000) as f64 / rate as f64;
        assert!((took - (10.0 - cap)).abs() < 1e-3, "{took}");
        // Idle time refills it, up to the cap only.
        let later = at + Duration::from_secs(60);
        assert_eq!(s.due(later, 1000, later, None), later);
        assert!(s.due(later, 5000, later, None) > later);
        assert_eq!(s.chunk_limit(16 * 1024), 2000);
    }
}
