//! The burst waits for the fault plugins to be set up.
//!
//! A fault plugin sets up (holds unsynced data, finds the leader, opens a
//! lease meant to be in force from the first write) and then waits for the
//! burst to reach its moment. Started together, a fast system's burst can
//! finish before a plugin on a loaded host has even been instantiated: its
//! `wait_writes(30)` then returns at write 60 and the fault lands after
//! the burst (seen on etcd in CI, where 60 writes take ~100 ms). So the
//! burst starts once every plugin of the class has said it is set up: its
//! first wait (`wait_writes`, `sleep_ms`) or its return says so, and a
//! plugin that does neither within [`SET_UP_CAP`] is not waited for longer.

use std::time::Duration;
use tokio::sync::watch;

/// How long the burst waits for plugins that neither wait nor return.
pub const SET_UP_CAP: Duration = Duration::from_secs(2);

/// One plugin's "set up" signal, given once: by [`SetUp::done`] or when
/// dropped (the plugin returned, trapped or was never started).
pub struct SetUp {
    count: Option<watch::Sender<usize>>,
}

impl SetUp {
    /// A signal nobody waits for: a plugin called outside a cycle.
    pub fn unwatched() -> Self {
        Self { count: None }
    }

    pub fn done(&mut self) {
        if let Some(tx) = self.count.take() {
            tx.send_modify(|n| *n += 1);
        }
    }
}

impl Drop for SetUp {
    fn drop(&mut self) {
        self.done();
    }
}

/// The signals of one cycle's fault plugins.
pub struct SetUps {
    count: watch::Sender<usize>,
    expected: usize,
}

impl SetUps {
    /// One signal per plugin, in the order given.
    pub fn new(plugins: usize) -> (Self, Vec<SetUp>) {
        let count = watch::channel(0).0;
        let tokens = (0..plugins)
            .map(|_| SetUp {
                count: Some(count.clone()),
            })
            .collect();
        (
            Self {
                count,
                expected: plugins,
            },
            tokens,
        )
    }

    /// Wait until every plugin is set up, or `cap` ([`SET_UP_CAP`] in a
    /// cycle). Returns whether all were.
    pub async fn wait(self, cap: Duration) -> bool {
        let mut rx = self.count.subscribe();
        let expected = self.expected;
        tokio::time::timeout(cap, rx.wait_for(|n| *n >= expected))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_every_plugin_and_counts_a_drop_as_set_up() {
        let (all, mut tokens) = SetUps::new(2);
        let waiting = tokio::spawn(all.wait(Duration::from_secs(600)));
        tokio::task::yield_now().await;
        tokens[0].done();
        tokens[0].done();
        assert!(!waiting.is_finished(), "one plugin counted twice");
        drop(tokens.pop());
        assert!(waiting.await.unwrap());
    }

    #[tokio::test]
    async fn a_plugin_that_never_says_is_not_waited_for_past_the_cap() {
        let (all, _tokens) = SetUps::new(1);
        assert!(!all.wait(Duration::from_millis(20)).await);
    }

    #[tokio::test]
    async fn no_plugins_means_no_wait() {
        let (all, _) = SetUps::new(0);
        assert!(all.wait(Duration::ZERO).await);
    }
}
