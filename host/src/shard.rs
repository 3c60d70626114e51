//! `--shard I/N`: which cycles of a campaign one machine (or CI job) runs.
//!
//! Cycle `n` of every class belongs to shard `((n - 1) mod N) + 1`: shards
//! are interleaved rather than cut into blocks so that every shard runs every
//! class (a class's failure shows up in whichever shard ran its cycle, and
//! the shards take about equally long), and so that adding cycles to a
//! campaign never moves an existing cycle to another shard of the same N.
//! Seeds come from [`chaos_model::seed::cycle_seed`], which depends on the class
//! and the cycle number only, so a shard's cycle is the unsharded run's
//! cycle, seed for seed.

use serde::{Deserialize, Serialize};

/// Shard `index` of `count` (1-based), e.g. `2/3`. Read from run.json
/// through the same checks as `--shard` (a hand-edited `count = 0` must be
/// an error, not a division by zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawShard")]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

#[derive(Deserialize)]
struct RawShard {
    index: u32,
    count: u32,
}

impl TryFrom<RawShard> for Shard {
    type Error = String;
    fn try_from(r: RawShard) -> Result<Self, String> {
        format!("{}/{}", r.index, r.count).parse()
    }
}

impl Shard {
    /// The whole campaign as one shard (an unsharded run).
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// Whether cycle `n` (1-based) of any class is this shard's.
    pub fn owns(self, n: u32) -> bool {
        (n - 1) % self.count + 1 == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parsed = s.split_once('/').and_then(|(i, n)| {
            Some((i.trim().parse::<u32>().ok()?, n.trim().parse::<u32>().ok()?))
        });
        match parsed {
            Some((index, count)) if count >= 1 && (1..=count).contains(&index) => {
                Ok(Shard { index, count })
            }
            Some((index, count)) => Err(format!(
                "shard {index} of {count} does not exist (shards are numbered 1 to N, N at least 1), e.g. --shard 1/{}",
                count.max(2)
            )),
            None => Err(format!(
                "{s:?} is not I/N, e.g. --shard 2/4 (the second of four shards)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_shard_is_checked_like_the_flag() {
        let ok: Shard = serde_json::from_str(r#"{"index":2,"count":3}"#).unwrap();
        assert_eq!(ok, Shard { index: 2, count: 3 });
        let e = serde_json::from_str::<Shard>(r#"{"index":1,"count":0}"#).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    #[test]
    fn shards_partition_the_cycles_round_robin() {
        let shards: Vec<Shard> = (1..=3).map(|index| Shard { index, count: 3 }).collect();
        for n in 1..=10 {
            let owners: Vec<_> = shards.iter().filter(|s| s.owns(n)).collect();
            assert_eq!(owners.len(), 1, "cycle {n} has exactly one shard");
        }
        let of = |s: Shard| (1..=7).filter(|&n| s.owns(n)).collect::<Vec<_>>();
        assert_eq!(of(shards[0]), vec![1, 4, 7]);
        assert_eq!(of(shards[1]), vec![2, 5]);
        assert_eq!(of(shards[2]), vec![3, 6]);
        assert!((1..=5).all(|n| Shard::WHOLE.owns(n)));
    }

    #[test]
    fn shard_text_parses_and_bad_text_says_the_form() {
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        assert_eq!(Shard { index: 2, count: 4 }.to_string(), "2/4");
        for bad in ["0/3", "4/3", "1/0"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("does not exist"), "{bad}: {e}");
        }
        for bad in ["2", "a/b", "1/2/3", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("is not I/N"), "{bad}: {e}");
        }
    }
}
