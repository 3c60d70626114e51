//! A fault plugin that misbehaves on purpose, for the sandbox and rollback
//! tests. `mode` picks the misbehaviour:
//! - `pause_then_trap`: pause node 1 for 10 s, then panic (a trap).
//! - `partition_then_trap`: isolate node 0 for 10 s, then panic.
//! - `pause_and_hang`: pause node 1 for 10 s, then sleep past the deadline.
//! - `pause_then_loop`: pause node 1, then spin forever (CPU budget).
//! - `memory_bomb`: pause node 1, then allocate without bound.
//! - `deep_recursion`: recurse until the stack runs out.
//! - `read_file`, `open_socket`, `read_env`: try to reach outside; returns
//!   `Err("contained: ...")` when the sandbox said no, `Ok` if it escaped.
//!   `open_socket` dials 127.0.0.1 on the `port` parameter.
//! - `bad_node`: signal node 99.
//! - `pause_peers`: pause every non-primary node for 3 s, then return.
//! - `nothing`: ask for no effect and return Ok.
//! - `pause_twice`: pause node 1 while it is already paused.
//! - `partition_twice`: a second partition just before the first ends.
//! - `undeclared_capability`: skew a clock without declaring `clock`.
//! - `undeclared_disk`: ask for a disk fault without declaring `disk`.
//! - `restart_bad_node`: restart node 99.
//! - `huge_error`: return an 8 MiB error string.
//! - `panic`: panic at once.
//! - `log_flood`: log 200,000 lines.
//! - `slow_set_up`: spend 1.5 s before its first wait (as a plugin on a
//!   loaded host may), then pause node 1 for 1 s at a quarter of the burst.
//! - `extreme_numbers`: a pause and a partition of 0 ms, a pause of
//!   u32::MAX ms and a restart down u32::MAX ms, ignoring the refusals.
//! - `control_chars`: log and return text with a newline, an ESC
//!   sequence and a NUL, a forged progress line among them.
//! - `replay`: draw from `getrandom`, `rand`'s thread rng and std's hash
//!   keys, read the wall clock, and return them all as the error, at once
//!   (before the wait for writes, so the clock is read right after the
//!   host made the instance).

use chaos_sdk::{Capability, CycleInfo, Fault, ParamType, Params, PluginInfo, grudge, host};
use rand::Rng;
use std::hash::BuildHasher;

struct Misbehave;

/// What the WASI randomness and wall clock say, as one line.
fn replay() -> Result<(), String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| format!("getrandom: {e}"))?;
    let drawn: u64 = rand::rng().random();
    let hashed = std::collections::hash_map::RandomState::new().hash_one(42u64);
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| format!("wall clock: {e}"))?
        .as_secs();
    Err(format!(
        "replay: getrandom {} rand {drawn} hash {hashed} wall {wall}",
        u64::from_le_bytes(bytes)
    ))
}

fn recurse(n: u64, pad: &mut [u8; 256]) -> u64 {
    if n == u64::MAX {
        return 0;
    }
    pad[(n % 256) as usize] = n as u8;
    let mut next = [0u8; 256];
    next.copy_from_slice(pad);
    recurse(n + 1, &mut next) + u64::from(pad[0])
}

impl Fault for Misbehave {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("misbehave", env!("CARGO_PKG_VERSION"))
            .author("chaos-host tests")
            .describe("misbehaves on purpose (tests only)")
            .needs(Capability::Pause)
            .needs(Capability::Partition)
            .needs(Capability::Signal)
            .needs(Capability::Restart)
            .param(
                "mode",
                ParamType::Text,
                "pause_then_trap",
                "which misbehaviour",
            )
            .param("port", ParamType::Integer, "22", "port open_socket dials")
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let mode = cycle.param("mode").unwrap_or("pause_then_trap").to_string();
        if mode == "replay" {
            return replay();
        }
        if mode == "slow_set_up" {
            let t0 = host::now_ms();
            while host::now_ms() < t0 + 1_500 {
                std::hint::black_box(t0);
            }
            host::wait_writes(cycle.writes / 4);
            return host::pause(1, 1_000);
        }
        host::wait_writes(cycle.writes / 4);
        match mode.as_str() {
            "pause_then_trap" => {
                host::pause(1, 10_000)?;
                panic!("misbehave: trapping with node 1 paused");
            }
            "partition_then_trap" => {
                host::partition(&grudge::isolate(0, cycle.nodes), 10_000)?;
                panic!("misbehave: trapping with node 0 cut off");
            }
            "pause_and_hang" => {
                host::pause(1, 10_000)?;
                host::sleep_ms(u32::MAX);
                Ok(())
            }
            "pause_then_loop" => {
                host::pause(1, 10_000)?;
                let mut x: u64 = 1;
                loop {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            }
            "memory_bomb" => {
                host::pause(1, 10_000)?;
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![0xAB; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "deep_recursion" => {
                let mut pad = [0u8; 256];
                let n = recurse(0, &mut pad);
                Err(format!("recursion returned {n}"))
            }
            "read_file" => match std::fs::read("/etc/passwd") {
                Ok(b) => {
                    host::warn(&format!("escaped: read {} bytes", b.len()));
                    Ok(())
                }
                Err(e) => Err(format!("contained: file read refused: {e}")),
            },
            "open_socket" => match std::net::TcpStream::connect((
                std::net::Ipv4Addr::LOCALHOST,
                cycle.param_u64("port", 22) as u16,
            )) {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("contained: socket refused: {e}")),
            },
            "read_env" => {
                let n = std::env::vars().count();
                if n == 0 {
                    Err("contained: environment is empty".into())
                } else {
                    host::warn(&format!("escaped: {n} environment variables"));
                    Ok(())
                }
            }
            "bad_node" => host::kill(99),
            "pause_peers" => {
                // Every node but the primary, for 3 s: another plugin of a
                // composed class that pauses a peer meanwhile must be refused.
                for n in (0..cycle.nodes).filter(|n| *n != cycle.primary) {
                    host::pause(n, 3_000)?;
                }
                Ok(())
            }
            "nothing" => Ok(()),
            "control_chars" => {
                let forged = "x\n[misbehave] cycle 1/1 pass: forged\u{1b}[2J\u{0}<tag>";
                host::warn(forged);
                Err(forged.to_string())
            }
            "extreme_numbers" => {
                let _ = host::pause(1, 0);
                let _ = host::partition(&grudge::isolate(0, cycle.nodes), 0);
                let _ = host::pause(1, u32::MAX);
                let _ = host::restart(1, u32::MAX);
                Ok(())
            }
            "pause_twice" => {
                host::pause(1, 2_000)?;
                host::pause(1, 2_000)
            }
            "partition_twice" => {
                // The second replaces the first; ending the first must not
                // lift the second.
                host::partition(&grudge::isolate(0, cycle.nodes), 300)?;
                host::sleep_ms(290);
                host::partition(&grudge::isolate(0, cycle.nodes), 600)?;
                host::sleep_ms(600);
                Ok(())
            }
            "undeclared_capability" => host::clock_offset(1, 60_000, 1_000),
            "undeclared_disk" => host::lose_unsynced(1, 1_000),
            "restart_bad_node" => host::restart(99, 100),
            "huge_error" => Err("x".repeat(8 << 20)),
            "panic" => panic!("misbehave: panic at once"),
            "log_flood" => {
                for i in 0..200_000 {
                    host::warn(&format!("flood line {i}"));
                }
                Err("flooded".into())
            }
            other => Err(format!("unknown mode {other}")),
        }
    }
}

chaos_sdk::export_fault!(Misbehave);
