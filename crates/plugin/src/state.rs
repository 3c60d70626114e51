//! What every plugin call shares: the store data of one instance, and how
//! a call fails.

use super::grants::Grants;
use super::limits::InstanceLimits;
use chaos_effects::Effects;
use chaos_model::contract::Capability;
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// A plugin failed its call. Carries the plugin and the phase.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {plugin}: {phase} trapped: {reason}")]
    Trap {
        plugin: String,
        phase: &'static str,
        reason: String,
    },
    #[error("plugin {plugin}: {phase} exceeded its {ms} ms deadline")]
    Timeout {
        plugin: String,
        phase: &'static str,
        ms: u128,
    },
    #[error("plugin {plugin}: {phase} returned an error: {reason}")]
    Returned {
        plugin: String,
        phase: &'static str,
        reason: String,
    },
}

/// Longest plugin-supplied text kept in a record (a plugin may return
/// megabytes).
pub const MAX_REASON_BYTES: usize = 4096;

/// `text` cut to [`MAX_REASON_BYTES`], saying how much was dropped, with
/// every control character shown escaped (`\u{1b}`, `\n`): a plugin's text
/// is shown, never interpreted, and stays one line (no forged progress
/// line on stderr, no terminal escape, no XML junit.xml cannot hold).
pub fn clip(text: String) -> String {
    let mut text = printable(text);
    if text.len() <= MAX_REASON_BYTES {
        return text;
    }
    let total = text.len();
    let mut cut = MAX_REASON_BYTES;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push_str(&format!(" …({} more bytes dropped)", total - cut));
    text
}

/// `text` with its control characters escaped.
pub fn printable(text: String) -> String {
    if !text.chars().any(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Store data of one plugin instance.
pub struct PluginState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: InstanceLimits,
    pub(super) label: String,
    pub(super) grants: Grants,
    pub(super) declared: Vec<Capability>,
    pub(super) effects: Option<Arc<Effects>>,
    /// Given at the plugin's first wait (see `chaos_effects::SetUp`).
    pub(super) set_up: Option<chaos_effects::SetUp>,
    pub(super) rng: ChaCha8Rng,
    pub(super) log_lines: u32,
    /// Capability uses the host refused during this call.
    pub(super) denials: Vec<String>,
    /// The history an assertion call reads (`history` interface).
    pub(super) history: Option<Arc<chaos_model::history::History>>,
}

impl PluginState {
    /// The store's resource table (the `history` interface's handles).
    pub(super) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_text_is_one_printable_line() {
        let t = clip("forged\n[x] cycle 1/1 pass\u{1b}[2J\0end".into());
        assert_eq!(t, "forged\\n[x] cycle 1/1 pass\\u{1b}[2J\\u{0}end");
        assert!(!t.chars().any(char::is_control));
        let long = clip("\u{7}".repeat(5000));
        assert!(long.contains("more bytes dropped") && !long.contains('\u{7}'));
        assert_eq!(clip("plain é".into()), "plain é");
    }
}
