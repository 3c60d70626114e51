//! Link faults: the directed links of a grudge degraded (latency, jitter,
//! loss, bandwidth, reset) for a lease.
//!
//! Verified only when both halves of the proof hold: right after the fault
//! is installed the host measures every degraded link with an echo probe
//! (round trips, throughput, lost chunks, a reset) and each must show what
//! was asked; and when the lease ends the system's own traffic must have
//! crossed at least one degraded link. A fault on links the system never
//! uses changes nothing and is `ineffective`, however well it measures.

use super::{EffectRecord, Effects};
use crate::kind::Kind;
use crate::lease::Lease;
use chaos_mechanisms::net::Grudge;
use chaos_model::contract::LinkFault;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Share of the lease the probe may spend measuring: the rest of the
/// lease degrades the system's traffic unobserved.
const PROBE_SHARE: f64 = 0.6;

impl Effects {
    pub async fn link(
        self: &Arc<Self>,
        grudge: Grudge,
        fault: LinkFault,
        ms: u32,
        seed: u64,
    ) -> Result<(), String> {
        chaos_model::bounds::lease("link", ms)?;
        self.check_grudge(Kind::Link, &grudge)?;
        fault.check(ms)?;
        // A new link fault replaces the one in force (this plugin's only).
        // Held until the new lease is recorded.
        let claim = self.replace_own(Kind::Link).await?;
        let during_burst = self.burst_running();
        let first = grudge.iter().position(|r| !r.is_empty()).unwrap_or(0) as u32;
        let installed = self.net.link(&grudge, fault, seed).await;
        let start_us = self.now_us();
        let (generation, evidence) = match installed {
            Ok(g) => g,
            Err(e) => {
                self.net.unlink_now();
                return Err(e);
            }
        };
        let slot = self.open(
            EffectRecord::lease(
                Kind::Link,
                first,
                format!(
                    "grudge {} {} for {ms} ms ({})",
                    serde_json::to_string(&grudge).unwrap_or_default(),
                    describe(&fault),
                    self.net.mode().as_str()
                ),
                Some(ms as u64),
                start_us,
                during_burst,
                evidence,
            ),
            Lease::Link { generation },
        );
        // Recorded: from here on another plugin is refused naming it.
        drop(claim);
        let measuring = Instant::now();
        let budget = Duration::from_millis((ms as f64 * PROBE_SHARE) as u64);
        let checks = self
            .net
            .measure_links(generation, &grudge, fault, budget)
            .await;
        let unshown: Vec<String> = checks
            .iter()
            .filter(|c| !c.shown)
            .map(|c| format!("{}->{}", c.from, c.to))
            .collect();
        let mut seen = format!(
            "; measured {} link(s) in {} ms: {}",
            checks.len(),
            measuring.elapsed().as_millis(),
            checks
                .iter()
                .map(|c| format!("{}->{} {}", c.from, c.to, c.detail))
                .collect::<Vec<_>>()
                .join("; ")
        );
        if !unshown.is_empty() {
            seen.push_str(&format!(
                "; link(s) {} not shown degraded",
                unshown.join(", ")
            ));
        }
        let verified = !checks.is_empty() && unshown.is_empty();
        self.update(slot, |r| {
            r.verified = verified && r.end_us.is_none();
            r.evidence.push_str(&seen);
        });
        self.schedule_end(slot, start_us, ms);
        Ok(())
    }
}

/// "latency 200±20 ms, loss 0.3, 1000 B/s, reset": what was asked.
fn describe(f: &LinkFault) -> String {
    let mut parts = Vec::new();
    if f.latency_ms > 0 {
        parts.push(format!("latency {}±{} ms", f.latency_ms, f.jitter_ms));
    }
    if f.loss > 0.0 {
        parts.push(format!("loss {}", f.loss));
    }
    if let Some(b) = f.bandwidth {
        parts.push(format!("bandwidth {b} B/s"));
    }
    if f.reset {
        parts.push("reset".into());
    }
    parts.join(", ")
}
