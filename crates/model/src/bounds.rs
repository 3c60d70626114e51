//! The range of every number a plugin hands the host with an effect,
//! checked where every effect enters (`chaos_effects`), whichever way the
//! plugin called (a component or a native plugin): a refusal names the
//! call, the value and the range, and no arithmetic downstream can
//! overflow on what passes (`clock_offset(i64::MAX)` once panicked the
//! host; a bandwidth of `u64::MAX` overflowed in the link shaper).

use std::ops::RangeInclusive;

/// A lease: 0 would be a fault that does nothing; longer than ten minutes
/// outlasts any cycle's burst many times over.
pub const LEASE_MS: RangeInclusive<u32> = 1..=600_000;
/// How long a restarted node stays down.
pub const DOWN_MS: RangeInclusive<u32> = 0..=600_000;
/// A clock offset: ten years either way (a node's clock moved further
/// wraps its own arithmetic: 1970 after a skew of -1e13 ms).
pub const OFFSET_MS: RangeInclusive<i64> = -315_360_000_000..=315_360_000_000;
/// A clock drift in millionths: from a stopped clock to one twice as fast.
pub const DRIFT_PPM: RangeInclusive<i32> = -1_000_000..=1_000_000;
/// A link's latency or jitter, and a slow disk's delay per operation.
pub const DELAY_MS: RangeInclusive<u32> = 0..=60_000;
/// A link's bandwidth, bytes per second (100 GB/s: faster than any link).
pub const BANDWIDTH: RangeInclusive<u64> = 1..=100_000_000_000;

/// Writes in one cycle: each is held in memory with its record and its
/// history entries while the cycle runs (about 1 KB), so a million is a
/// GB; `writes = 1000000000` once grew the host to 22 GB before the OOM
/// killer ended it, journal and nodes left behind.
pub const WRITES: RangeInclusive<u64> = 1..=1_000_000;
/// Writers at once in a burst.
pub const CONCURRENCY: RangeInclusive<u64> = 1..=1_024;
/// Nodes of one cluster (each a process group, ports and data dir).
pub const NODES: RangeInclusive<u64> = 1..=64;
/// One request's timeout, a readiness or recovery deadline, a settle.
pub const WAIT_MS: RangeInclusive<u64> = 1..=600_000;
/// Cycles of a class.
pub const CYCLES: RangeInclusive<u64> = 1..=1_000_000;

/// A campaign's `field` (or a flag) of `value` within `range`, else why not.
pub fn setting(field: &str, value: u64, range: &RangeInclusive<u64>) -> Result<(), String> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(format!(
        "{field} = {value} is out of range: give {} to {}",
        range.start(),
        range.end()
    ))
}

fn within<T: PartialOrd + std::fmt::Display>(
    call: &str,
    what: &str,
    value: T,
    range: &RangeInclusive<T>,
    hint: &str,
) -> Result<(), String> {
    if range.contains(&value) {
        return Ok(());
    }
    Err(format!(
        "{call}: {what} {value} is out of range (allowed {} to {}{hint})",
        range.start(),
        range.end()
    ))
}

/// A lease of `ms` for `call`.
pub fn lease(call: &str, ms: u32) -> Result<(), String> {
    let hint = if ms == 0 {
        "; a lease of 0 ms is a fault that does nothing"
    } else {
        ""
    };
    within(call, "lease ms", ms, &LEASE_MS, hint)
}

pub fn down(ms: u32) -> Result<(), String> {
    within("restart", "down_ms", ms, &DOWN_MS, "")
}

pub fn offset(ms: i64) -> Result<(), String> {
    within(
        "clock-offset",
        "offset ms",
        ms,
        &OFFSET_MS,
        ": ten years either way",
    )
}

pub fn drift(ppm: i32) -> Result<(), String> {
    within("clock-drift", "ppm", ppm, &DRIFT_PPM, "")
}

pub fn slow_io(ms: u32) -> Result<(), String> {
    let hint = if ms == 0 { "; 0 ms slows nothing" } else { "" };
    within("disk slow-io", "delay ms", ms, &(1..=*DELAY_MS.end()), hint)
}

pub fn link(latency_ms: u32, jitter_ms: u32, bandwidth: Option<u64>) -> Result<(), String> {
    within("link", "latency_ms", latency_ms, &DELAY_MS, "")?;
    within("link", "jitter_ms", jitter_ms, &DELAY_MS, "")?;
    match bandwidth {
        Some(b) => within("link", "bandwidth", b, &BANDWIDTH, " bytes/s"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extremes_are_refused_naming_call_value_and_range() {
        let e = lease("pause", 0).unwrap_err();
        assert!(
            e.contains("pause: lease ms 0") && e.contains("does nothing"),
            "{e}"
        );
        assert!(lease("partition", u32::MAX).unwrap_err().contains("600000"));
        assert!(lease("pause", 1).is_ok() && lease("pause", 600_000).is_ok());
        for o in [i64::MAX, i64::MIN, 10_000_000_000_000] {
            let e = offset(o).unwrap_err();
            assert!(e.contains(&o.to_string()) && e.contains("ten years"), "{e}");
        }
        assert!(offset(-3_600_000).is_ok());
        assert!(drift(i32::MIN).is_err() && drift(200_000).is_ok());
        assert!(slow_io(0).unwrap_err().contains("slows nothing"));
        assert!(slow_io(u32::MAX).is_err() && slow_io(20_000).is_ok());
        let e = link(0, 0, Some(u64::MAX)).unwrap_err();
        assert!(e.contains("bandwidth") && e.contains("bytes/s"), "{e}");
        assert!(
            link(1_000_000_000, 0, None)
                .unwrap_err()
                .contains("latency_ms")
        );
        assert!(link(50, 10, Some(1_000_000)).is_ok());
        assert!(down(u32::MAX).is_err() && down(0).is_ok());
    }
}
