//! What the host and a plugin exchange, in host-owned types. Every contract
//! version's generated bindings (`wit/`) convert into these, so the cycle
//! loop, grants and effects never see a generated type, and an old plugin
//! works through its version's adapter.

/// What a plugin may ask the host to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    Signal,
    Pause,
    Partition,
    Clock,
    /// Since 0.2.0.
    Restart,
    /// Since 0.2.0.
    Disk,
    /// Since 0.2.0.
    Link,
}

/// What a `disk` lease does to a node's data dir (since 0.2.0). Serde:
/// the remote disk helper's commands carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskFault {
    LoseUnsynced,
    FsyncError,
    DiskFull,
    /// Milliseconds added to every read, write and fsync.
    SlowIo(u32),
}

/// What a `link` lease does to the directed links of a grudge (since
/// 0.2.0). Checked by [`LinkFault::check`] before anything is applied.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkFault {
    pub latency_ms: u32,
    pub jitter_ms: u32,
    /// Probability in [0, 1].
    pub loss: f64,
    /// Bytes per second; `None`: unlimited.
    pub bandwidth: Option<u64>,
    pub reset: bool,
}

impl LinkFault {
    /// The reason this fault cannot be honoured over a lease of `ms`, if
    /// any: a fault that degrades nothing, or asks for what no link can
    /// do, is refused rather than recorded as a no-op.
    pub fn check(&self, ms: u32) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.loss) || self.loss.is_nan() {
            return Err(format!(
                "link: loss {} is not a probability (use a value in [0, 1])",
                self.loss
            ));
        }
        if self.bandwidth == Some(0) {
            return Err(
                "link: bandwidth 0 bytes/s carries nothing, which is a partition (use partition, or a bandwidth of at least 1 byte/s)".into(),
            );
        }
        if self.jitter_ms > self.latency_ms {
            return Err(format!(
                "link: jitter {} ms exceeds latency {} ms (a delay cannot be negative; lower jitter_ms to at most latency_ms)",
                self.jitter_ms, self.latency_ms
            ));
        }
        crate::bounds::link(self.latency_ms, self.jitter_ms, self.bandwidth)?;
        if u64::from(self.latency_ms) + u64::from(self.jitter_ms) >= u64::from(ms) {
            return Err(format!(
                "link: latency {} ms + jitter {} ms does not fit in the {ms} ms lease (no delayed byte would arrive before the heal; lengthen ms)",
                self.latency_ms, self.jitter_ms
            ));
        }
        if self.latency_ms == 0 && self.loss == 0.0 && self.bandwidth.is_none() && !self.reset {
            return Err(
                "link: the fault degrades nothing (set latency_ms, loss, bandwidth or reset)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// Which terminating signal `send-signal` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Kill,
    Term,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// One parameter a plugin declares.
#[derive(Clone, Debug)]
pub struct ParamSpec {
    pub name: String,
    /// "integer", "float", "boolean" or "text".
    pub kind: &'static str,
    pub default: String,
    pub doc: String,
}

/// What `describe()` returned.
#[derive(Clone, Debug)]
pub struct Info {
    pub name: String,
    pub version: String,
    pub author: String,
    pub description: String,
    /// "fault" or "assertion".
    pub kind: &'static str,
    pub capabilities: Vec<Capability>,
    pub params: Vec<ParamSpec>,
}

/// What an assertion's `check()` returned.
#[derive(Clone, Debug)]
pub struct Verdict {
    /// "pass", "fail" or "unknown".
    pub outcome: &'static str,
    pub reasons: Vec<String>,
    pub figures: Vec<(String, f64)>,
}

/// A contract version, `chaos:plugin@MAJOR.MINOR.PATCH`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// `"0.2.0"`; `None` unless exactly three decimal numbers.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('.');
        let mut next = || -> Option<u32> {
            let p = parts.next()?;
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        };
        let v = Self {
            major: next()?,
            minor: next()?,
            patch: next()?,
        };
        parts.next().is_none().then_some(v)
    }

    /// Compile-time parse of a version literal (for the per-version
    /// `MIN`/`MAX` constants).
    pub const fn from_static(s: &str) -> Self {
        let b = s.as_bytes();
        let mut n = [0u32; 3];
        let (mut i, mut part) = (0, 0);
        while i < b.len() {
            if b[i] == b'.' {
                part += 1;
            } else {
                assert!(b[i].is_ascii_digit(), "not a version");
                n[part] = n[part] * 10 + (b[i] - b'0') as u32;
            }
            i += 1;
        }
        assert!(part == 2, "not MAJOR.MINOR.PATCH");
        Self {
            major: n[0],
            minor: n[1],
            patch: n[2],
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::{LinkFault, Version};

    #[test]
    fn a_link_fault_that_cannot_be_honoured_is_refused_with_the_fix() {
        let ok = LinkFault {
            latency_ms: 200,
            jitter_ms: 20,
            loss: 0.0,
            bandwidth: None,
            reset: false,
        };
        ok.check(1000).unwrap();
        let bad = |f: LinkFault, ms: u32, says: &str| {
            let e = f.check(ms).unwrap_err();
            assert!(e.contains(says), "{e}");
        };
        bad(LinkFault { loss: 1.5, ..ok }, 1000, "not a probability");
        bad(
            LinkFault {
                loss: f64::NAN,
                ..ok
            },
            1000,
            "not a probability",
        );
        bad(
            LinkFault {
                bandwidth: Some(0),
                ..ok
            },
            1000,
            "bandwidth 0",
        );
        bad(
            LinkFault {
                jitter_ms: 300,
                ..ok
            },
            1000,
            "exceeds latency",
        );
        bad(ok, 200, "does not fit");
        let nothing = LinkFault {
            latency_ms: 0,
            jitter_ms: 0,
            ..ok
        };
        bad(nothing, 1000, "degrades nothing");
    }

    #[test]
    fn versions_parse_strictly_and_order_numerically() {
        assert_eq!(
            Version::parse("0.10.2"),
            Some(Version::from_static("0.10.2"))
        );
        for bad in ["0.2", "0.2.0.1", "0.2.x", "", "0..1", "+1.0.0"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
        assert!(Version::parse("0.10.0") > Version::parse("0.9.9"));
        assert_eq!(Version::from_static("9.0.0").to_string(), "9.0.0");
    }
}
