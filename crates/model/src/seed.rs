//! Seeds: every cycle's seed derived from the run's, so a cycle replays
//! alone with the same decisions.

/// The seed of cycle `n` of `class`: from the run seed, the class's name
/// and the cycle number only, so adding, removing or reordering classes
/// never changes another class's cycles, a shard can compute any cycle's
/// seed, and `chaos-host replay` can check a recorded one.
pub fn cycle_seed(run_seed: u64, class: &str, n: u32) -> u64 {
    // FNV-1a of the name: stable across builds and platforms (std's
    // hashers are not).
    let name = class.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    });
    splitmix(splitmix(run_seed ^ name) ^ n as u64)
}

/// SplitMix64: derives independent per-cycle seeds from the campaign seed.
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
