//! The `host` interface a plugin imports: log, seeded random, time, sleep,
//! burst progress, and effects behind grants. Written once, in host-owned
//! types; each contract version's module in `wit/` implements its generated
//! `Host` trait by calling these.

use super::state::PluginState;
use chaos_effects::Effects;
use chaos_model::contract::{Capability, DiskFault, LinkFault, LogLevel, Signal};
use rand::RngCore;
use std::sync::Arc;
use std::time::Duration;

/// Lines one call may log before the rest are dropped (a flooding plugin
/// must not fill the disk).
pub const MAX_LOG_LINES: u32 = 1000;
/// Bytes of one log line kept.
pub const MAX_LOG_BYTES: usize = 4096;

impl PluginState {
    fn effects(&self) -> Result<&Arc<Effects>, String> {
        self.effects
            .as_ref()
            .ok_or_else(|| "effects are only available during inject()".to_string())
    }

    /// An effect the host could not apply is recorded with the refusals:
    /// a plugin that ignores the error must not pass on its other effects.
    fn note(&mut self, r: Result<(), String>) -> Result<(), String> {
        if let Err(e) = &r {
            self.denials.push(format!("effect not applied: {e}"));
        }
        r
    }

    fn allow(&mut self, c: Capability) -> Result<(), String> {
        let r = self.grants.allow(c, &self.declared);
        if let Err(e) = &r {
            self.denials.push(e.clone());
        }
        r
    }
}

impl PluginState {
    pub(super) fn host_log(&mut self, level: LogLevel, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            if self.log_lines == MAX_LOG_LINES + 1 {
                tracing::warn!(plugin = %self.label, "log limit of {MAX_LOG_LINES} lines reached; dropping the rest");
            }
            return;
        }
        let mut m = super::state::printable(message);
        if m.len() > MAX_LOG_BYTES {
            let mut cut = MAX_LOG_BYTES;
            while !m.is_char_boundary(cut) {
                cut -= 1;
            }
            m.truncate(cut);
            m.push_str(" …(truncated)");
        }
        let label = &self.label;
        match level {
            LogLevel::Debug => tracing::debug!(plugin = %label, "{m}"),
            LogLevel::Info => tracing::info!(plugin = %label, "{m}"),
            LogLevel::Warn => tracing::warn!(plugin = %label, "{m}"),
            LogLevel::Error => tracing::error!(plugin = %label, "{m}"),
        }
    }

    pub(super) fn host_random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    pub(super) fn host_now_ms(&mut self) -> u64 {
        self.effects
            .as_ref()
            .map_or(0, |e| e.started().elapsed().as_millis() as u64)
    }

    pub(super) async fn host_sleep_ms(&mut self, ms: u32) {
        self.set_up.take();
        tokio::time::sleep(Duration::from_millis(ms as u64)).await;
    }

    pub(super) async fn host_wait_writes(&mut self, count: u32) -> u32 {
        self.set_up.take();
        let Ok(effects) = self.effects() else {
            return 0;
        };
        let mut rx = effects.progress();
        let seen = rx
            .wait_for(|p| p.issued >= count || p.done)
            .await
            .map(|p| p.issued);
        seen.unwrap_or_else(|_| rx.borrow().issued)
    }

    pub(super) async fn host_leader(&mut self) -> Result<Option<u32>, String> {
        self.effects()?.leader().await
    }

    pub(super) async fn host_send_signal(&mut self, node: u32, sig: Signal) -> Result<(), String> {
        self.allow(Capability::Signal)?;
        let sig = match sig {
            Signal::Kill => nix::sys::signal::Signal::SIGKILL,
            Signal::Term => nix::sys::signal::Signal::SIGTERM,
        };
        let r = self.effects()?.clone().signal(node, sig).await;
        self.note(r)
    }

    pub(super) async fn host_pause(&mut self, node: u32, ms: u32) -> Result<(), String> {
        self.allow(Capability::Pause)?;
        let r = self.effects()?.clone().pause(node, ms).await;
        self.note(r)
    }

    pub(super) async fn host_partition(
        &mut self,
        grudge: Vec<Vec<u32>>,
        ms: u32,
    ) -> Result<(), String> {
        self.allow(Capability::Partition)?;
        let r = self.effects()?.clone().partition(grudge, ms).await;
        self.note(r)
    }

    pub(super) async fn host_clock_offset(
        &mut self,
        node: u32,
        offset_ms: i64,
        ms: u32,
    ) -> Result<(), String> {
        self.allow(Capability::Clock)?;
        let effects = self.effects()?.clone();
        let r = effects.clock_offset(node, offset_ms, ms).await;
        self.note(r)
    }

    pub(super) async fn host_clock_drift(
        &mut self,
        node: u32,
        ppm: i32,
        ms: u32,
    ) -> Result<(), String> {
        self.allow(Capability::Clock)?;
        let effects = self.effects()?.clone();
        let r = effects.clock_drift(node, ppm, ms).await;
        self.note(r)
    }

    pub(super) async fn host_restart(&mut self, node: u32, down_ms: u32) -> Result<(), String> {
        self.allow(Capability::Restart)?;
        let r = self.effects()?.clone().restart(node, down_ms).await;
        self.note(r)
    }

    pub(super) async fn host_disk(
        &mut self,
        node: u32,
        fault: DiskFault,
        ms: u32,
    ) -> Result<(), String> {
        self.allow(Capability::Disk)?;
        let r = self.effects()?.clone().disk(node, fault, ms).await;
        self.note(r)
    }

    pub(super) async fn host_link(
        &mut self,
        grudge: Vec<Vec<u32>>,
        fault: LinkFault,
        ms: u32,
    ) -> Result<(), String> {
        self.allow(Capability::Link)?;
        // Jitter and loss draw from the cycle's seed, through the plugin's
        // generator, so a replayed cycle draws the same.
        let seed = self.host_random();
        let r = self.effects()?.clone().link(grudge, fault, ms, seed).await;
        self.note(r)
    }
}
