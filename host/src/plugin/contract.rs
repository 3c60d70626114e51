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
}

/// What a `disk` lease does to a node's data dir (since 0.2.0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFault {
    LoseUnsynced,
    FsyncError,
    DiskFull,
    /// Milliseconds added to every read, write and fsync.
    SlowIo(u32),
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
    use super::Version;

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
