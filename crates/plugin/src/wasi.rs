//! The WASI context one plugin call gets: nothing outside the sandbox, and
//! randomness and clocks derived from the cycle's seed.
//!
//! WASI is linked so std-built guests instantiate, but the context has no
//! preopens, no env, no args, no stdio and denies every socket address.
//! Ordinary crates (`rand`, `getrandom`, `std::time::SystemTime`) reach the
//! host through `wasi:random` and `wasi:clocks`; here those answer from the
//! seed, so `--seed N` replays a plugin that uses them as it replays one
//! that asks `host::random`.
//!
//! - `wasi:random/random` and `wasi:random/insecure`: ChaCha8 keyed by the
//!   seed, each on its own stream (the host's `random` draws from stream
//!   0). Not secret: a plugin has no use for secrets, and a replay needs
//!   the same bytes.
//! - `wasi:random/insecure-seed`: from a third stream.
//! - `wasi:clocks/wall-clock`: a base fixed by the seed (a whole second in
//!   2024) plus the real time elapsed since the call's store was made. A
//!   fixed base alone would stop time inside the plugin (timeouts would
//!   never pass), and the real clock would make every run differ; read in
//!   whole seconds, a short call sees the same time in every replay.
//! - `wasi:clocks/monotonic-clock`: nanoseconds since the store was made,
//!   so the host's uptime does not leak in and deadlines computed from it
//!   still hold.

use chacha20::ChaCha8Rng;
use chacha20::rand_core::{Rng, SeedableRng};
use std::time::{Duration, Instant};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx};

/// 2024-01-01T00:00:00Z, the earliest base of the plugin's wall clock.
const WALL_CLOCK_ORIGIN: Duration = Duration::from_secs(1_704_067_200);
/// The seed picks the base among this many whole seconds after the origin.
const WALL_CLOCK_SPAN_S: u64 = 366 * 24 * 3600;

/// Most bytes one `get-random-bytes` call may ask for.
const MAX_RANDOM_BYTES: u64 = 1 << 20;

const STREAM_SECURE: u64 = 1;
const STREAM_INSECURE: u64 = 2;
const STREAM_SEEDS: u64 = 3;

fn stream(seed: u64, n: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(n);
    rng
}

/// The WASI context of one call whose cycle seed is `seed`.
pub fn context(seed: u64) -> WasiCtx {
    builder(seed).build()
}

/// The WASI context of a client instance: [`context`], and TCP to the
/// cycle's nodes (`nodes`, their client addresses) and nowhere else. An
/// implicit bind (the wildcard address, port 0, before a connect) is
/// allowed; every other address and use (listen, UDP, name lookup) is
/// refused and written to `refused` with the plugin's `label`, so the
/// cycle can name it.
pub fn client_context(
    seed: u64,
    nodes: Vec<std::net::SocketAddr>,
    refused: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    label: String,
) -> WasiCtx {
    use wasmtime_wasi::sockets::SocketAddrUse;
    let mut b = builder(seed);
    b.allow_tcp(true)
        .socket_addr_check(move |addr, use_| {
            let allowed = match use_ {
                SocketAddrUse::TcpConnect => nodes.contains(&addr),
                SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                _ => false,
            };
            if !allowed {
                let mut r = refused.lock().unwrap_or_else(|e| e.into_inner());
                // A client retrying in a loop is bounded here.
                if r.len() < 20 {
                    r.push(format!(
                        "client {label}: {use_:?} {addr} refused (a client may connect to the cycle's nodes only: {})",
                        nodes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
                    ));
                }
            }
            Box::pin(async move { allowed })
        });
    b.build()
}

fn builder(seed: u64) -> wasmtime_wasi::WasiCtxBuilder {
    let mut seeds = stream(seed, STREAM_SEEDS);
    let insecure_seed = (u128::from(seeds.next_u64()) << 64) | u128::from(seeds.next_u64());
    let base = WALL_CLOCK_ORIGIN + Duration::from_secs(seeds.next_u64() % WALL_CLOCK_SPAN_S);
    let start = Instant::now();
    let mut b = WasiCtx::builder();
    b.allow_ip_name_lookup(false)
        .allow_tcp(false)
        .allow_udp(false)
        .secure_random(stream(seed, STREAM_SECURE))
        .insecure_random(stream(seed, STREAM_INSECURE))
        .insecure_random_seed(insecure_seed)
        // The host allocates the bytes before the plugin's memory cap sees
        // them; wasmtime's default allows 64 MiB per call.
        .max_random_size(MAX_RANDOM_BYTES)
        .wall_clock(SeededWallClock { base, start })
        .monotonic_clock(StoreMonotonicClock { start });
    b
}

/// Wall clock: a seeded base plus the real time since the store was made.
struct SeededWallClock {
    base: Duration,
    start: Instant,
}

impl HostWallClock for SeededWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        self.base + self.start.elapsed()
    }
}

/// Monotonic clock: nanoseconds since the store was made.
struct StoreMonotonicClock {
    start: Instant,
}

impl HostMonotonicClock for StoreMonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_replay_and_differ() {
        assert_eq!(
            stream(7, STREAM_SECURE).next_u64(),
            stream(7, STREAM_SECURE).next_u64()
        );
        assert_ne!(
            stream(7, STREAM_SECURE).next_u64(),
            stream(8, STREAM_SECURE).next_u64()
        );
        assert_ne!(
            stream(7, STREAM_SECURE).next_u64(),
            stream(7, STREAM_INSECURE).next_u64()
        );
    }

    #[test]
    fn wall_clock_starts_at_its_base() {
        let c = SeededWallClock {
            base: WALL_CLOCK_ORIGIN,
            start: Instant::now(),
        };
        let now = c.now();
        assert!(now >= WALL_CLOCK_ORIGIN && now < WALL_CLOCK_ORIGIN + Duration::from_secs(1));
    }
}
