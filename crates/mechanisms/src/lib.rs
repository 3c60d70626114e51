//! The mechanisms: how a fault is put in force on a machine, each with its
//! remote backend over SSH. [`net`]: partitions and degraded links (loopback,
//! TCP proxies, network namespaces with nftables and NFQUEUE, nftables on
//! remote hosts). [`disk`]: the FUSE layer under each node's data dir.
//! [`clock`]: vDSO patching and libfaketime. The three do not import each
//! other; [`undo`] joins their journal entries for recovery.

pub mod clock;
pub mod disk;
pub mod net;
pub mod undo;

pub use undo::UNDO;
