//! The shared model, the lowest layer of chaos-host: what a campaign file
//! says (its schema, templates and placeholders), how plugins and hosts are
//! named, the plugin contract's data types, the operation history, and the
//! seeds every cycle derives from. Data and its validation only: nothing
//! here starts a process, opens a socket or touches the machine.

pub mod bounds;
pub mod burst;
pub mod campaign;
pub mod client;
pub mod contract;
pub mod history;
pub mod hosts;
pub mod network;
pub mod plugin_ref;
pub mod register;
pub mod seed;
pub mod template;
