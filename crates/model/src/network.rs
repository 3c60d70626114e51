//! How the nodes are networked: the campaign's `[network] mode`.

use serde::Deserialize;

/// How partitions and link faults are enforced (see the mechanisms' `net`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Loopback,
    Proxy,
    Netns,
    /// Nodes on remote hosts (`[hosts]`); partitions as nftables on them.
    Ssh,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Loopback => "loopback",
            Mode::Proxy => "proxy",
            Mode::Netns => "netns",
            Mode::Ssh => "ssh",
        }
    }
}
