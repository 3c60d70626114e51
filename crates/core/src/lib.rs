//! The core of chaos-host: one cycle, step by step ([`cycle`]), the
//! client that carries its operations ([`client`]: HTTP templates or driver
//! processes), the workload that drives the system ([`workload`],
//! [`register`]), the
//! probes of its promises ([`probes`]), the figures recorded per cycle
//! ([`metrics`]) and the verdict judged from them ([`verdict`]).
//!
//! Modules import downward only, in this order (lowest first): logging,
//! client, workload, register, probes, metrics, verdict, cycle.

pub mod client;
pub mod cycle;
pub mod logging;
pub mod metrics;
pub mod probes;
pub mod register;
pub mod verdict;
pub mod workload;
