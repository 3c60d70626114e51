//! Clients as components (since contract 0.3.0): what carries a cycle's
//! operations to a system that does not speak the campaign's HTTP
//! templates. One instance per client process: `open` once, then one
//! operation at a time; keep connections in the instance's own state
//! (a `thread_local!` or `static` cell: a component is single-threaded).
//!
//! A client may open TCP connections (`std::net::TcpStream`) to the
//! addresses in [`ClientConfig::nodes`] and nowhere else.
//!
//! ```no_run
//! use chaos_sdk::client::{Client, ClientConfig, ClientInfo, Outcome};
//!
//! struct Nothing;
//!
//! impl Client for Nothing {
//!     fn describe() -> ClientInfo {
//!         chaos_sdk::client::info("nothing", env!("CARGO_PKG_VERSION"), "refuses everything")
//!     }
//!     fn open(_config: ClientConfig) -> Result<(), String> {
//!         Ok(())
//!     }
//!     fn ready(_node: u32) -> Outcome {
//!         Outcome::Ok
//!     }
//!     fn setup() -> Outcome {
//!         Outcome::Ok
//!     }
//!     fn add(_node: u32, _id: String) -> Outcome {
//!         Outcome::Fail("refused".into())
//!     }
//!     fn read(_node: u32) -> Result<Vec<String>, Outcome> {
//!         Ok(vec![])
//!     }
//! }
//!
//! chaos_sdk::export_client!(Nothing);
//! ```

pub use crate::client_bindings::exports::chaos::plugin::client::{
    ClientConfig, ClientInfo, Outcome,
};

/// A client: the operations of the contract, each answered
/// [`Outcome::Ok`], [`Outcome::Fail`] (it did not happen) or
/// [`Outcome::Info`] (it may have happened).
pub trait Client {
    fn describe() -> ClientInfo;
    /// Once per instance, before its first operation.
    fn open(config: ClientConfig) -> Result<(), String>;
    /// May `node` serve operations now?
    fn ready(node: u32) -> Outcome;
    /// Create what the workload needs, once per cycle.
    fn setup() -> Outcome;
    /// Write `id` through `node`.
    fn add(node: u32, id: String) -> Outcome;
    /// Every id `node` holds in this cycle's namespace.
    fn read(node: u32) -> Result<Vec<String>, Outcome>;
    /// The register workload: write `value` to register `key` through
    /// `node`. By default a client does not do registers.
    fn put(_node: u32, _key: String, _value: String) -> Outcome {
        Outcome::Fail("this client does not do the register workload".into())
    }
    /// Read register `key` (`None`: never written).
    fn get(_node: u32, _key: String) -> Result<Option<String>, Outcome> {
        Err(Outcome::Fail(
            "this client does not do the register workload".into(),
        ))
    }
    /// Write `value` if register `key` holds `expected` (`None`: never
    /// written); [`Outcome::Fail`] when it does not.
    fn cas(_node: u32, _key: String, _expected: Option<String>, _value: String) -> Outcome {
        Outcome::Fail("this client does not do the register workload".into())
    }
}

/// A [`ClientInfo`] with no author and no parameters.
pub fn info(name: &str, version: &str, description: &str) -> ClientInfo {
    ClientInfo {
        name: name.into(),
        version: version.into(),
        author: String::new(),
        description: description.into(),
        params: vec![],
    }
}

impl<T: Client> crate::client_bindings::exports::chaos::plugin::client::Guest for T {
    fn describe() -> ClientInfo {
        T::describe()
    }
    fn open(config: ClientConfig) -> Result<(), String> {
        T::open(config)
    }
    fn ready(node: u32) -> Outcome {
        T::ready(node)
    }
    fn setup() -> Outcome {
        T::setup()
    }
    fn add(node: u32, id: String) -> Outcome {
        T::add(node, id)
    }
    fn read(node: u32) -> Result<Vec<String>, Outcome> {
        T::read(node)
    }
    fn put(node: u32, key: String, value: String) -> Outcome {
        T::put(node, key, value)
    }
    fn get(node: u32, key: String) -> Result<Option<String>, Outcome> {
        T::get(node, key)
    }
    fn cas(node: u32, key: String, expected: Option<String>, value: String) -> Outcome {
        T::cas(node, key, expected, value)
    }
}
