//! Host bindings, one module per supported contract version (as Zed keeps
//! `since_vX`): each has its own `bindgen!` over the frozen WIT in
//! `wit/deps/chaos-plugin@X/`, its `MIN`/`MAX` range, and `From` conversions
//! to and from the host-owned types of `contract` and `observations`. The
//! rest of the host sees only [`Pre`] and host-owned types. What the
//! versions share (`Pre`'s export calls, the imports since 0.1, the
//! unchanged conversions) is written once, in `glue`, and expanded in each
//! version module; a version module writes only what it changes or adds.
//!
//! Which module serves a component is decided before it is compiled: from
//! the `chaos:contract-version` custom section chaos-sdk writes, else (for
//! plugins built before the section existed, or without the SDK) from the
//! names of the interfaces it exports.

mod glue;
pub mod v0_1;
pub mod v0_2;
pub mod v0_3;

pub use v0_3 as latest;

use super::observations::{CycleInfo, Observations};
use super::state::PluginState;
use anyhow::bail;
use chaos_model::contract::{Info, Verdict, Version};
use wasmtime::Store;
use wasmtime::component::{Component, InstancePre, Linker};

/// The name of the custom section carrying the contract version.
pub const SECTION: &str = "chaos:contract-version";

/// Every supported range, oldest first.
pub const SUPPORTED: &[(Version, Version)] = &[
    (v0_1::MIN, v0_1::MAX),
    (v0_2::MIN, v0_2::MAX),
    (v0_3::MIN, v0_3::MAX),
];

/// "0.1.0-0.1.1, 0.2.0", for error messages.
pub fn supported() -> String {
    SUPPORTED
        .iter()
        .map(|(min, max)| {
            if min == max {
                min.to_string()
            } else {
                format!("{min} to {max}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Link every supported version's `host` interface.
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    v0_1::add_to_linker(linker)?;
    v0_2::add_to_linker(linker)?;
    v0_3::add_to_linker(linker)
}

/// A pre-instantiated component with the bindings of its contract version.
pub enum Pre {
    V0_1(v0_1::Pre),
    V0_2(v0_2::Pre),
    V0_3(v0_3::Pre),
    /// A client component (since 0.3.0): no inject, no check.
    Client(v0_3::ClientPre),
}

/// `$body` with `$p` bound to whichever version's `Pre` `$pre` holds: the
/// one `match` over versions, so an export is forwarded in one line and a
/// new version adds one arm here, not one per export.
macro_rules! each_version {
    ($pre:expr, $p:ident => $body:expr) => {
        match $pre {
            Pre::V0_1($p) => $body,
            Pre::V0_2($p) => $body,
            Pre::V0_3($p) => $body,
            Pre::Client(_) => unreachable!("callers handle clients first"),
        }
    };
}

impl Pre {
    pub fn new(
        kind: &'static str,
        version: Version,
        pre: InstancePre<PluginState>,
    ) -> anyhow::Result<Self> {
        let within = |(min, max): (Version, Version)| min <= version && version <= max;
        Ok(if kind == "client" {
            if !within((v0_3::MIN, v0_3::MAX)) {
                bail!(refusal(version));
            }
            Self::Client(v0_3::ClientPre::new(pre)?)
        } else if within((v0_1::MIN, v0_1::MAX)) {
            Self::V0_1(v0_1::Pre::new(kind, pre)?)
        } else if within((v0_2::MIN, v0_2::MAX)) {
            Self::V0_2(v0_2::Pre::new(kind, pre)?)
        } else if within((v0_3::MIN, v0_3::MAX)) {
            Self::V0_3(v0_3::Pre::new(kind, pre)?)
        } else {
            bail!(refusal(version))
        })
    }

    pub async fn describe(&self, store: &mut Store<PluginState>) -> wasmtime::Result<Info> {
        if let Pre::Client(c) = self {
            return c.describe(store).await;
        }
        each_version!(self, p => p.describe(store).await)
    }

    /// The client component, if this is one.
    pub fn client(&self) -> Option<&v0_3::ClientPre> {
        match self {
            Pre::Client(c) => Some(c),
            _ => None,
        }
    }

    pub async fn inject(
        &self,
        store: &mut Store<PluginState>,
        cycle: &CycleInfo,
    ) -> wasmtime::Result<Result<(), String>> {
        if let Pre::Client(_) = self {
            return Ok(Err("not a fault plugin (a client)".into()));
        }
        each_version!(self, p => p.inject(store, cycle).await)
    }

    pub async fn check(
        &self,
        store: &mut Store<PluginState>,
        observations: &Observations,
    ) -> wasmtime::Result<Result<Verdict, String>> {
        if let Pre::Client(_) = self {
            return Ok(Err("not an assertion plugin (a client)".into()));
        }
        each_version!(self, p => p.check(store, observations).await)
    }

    pub fn is_fault(&self) -> bool {
        if let Pre::Client(_) = self {
            return false;
        }
        each_version!(self, p => p.is_fault())
    }
}

fn refusal(version: Version) -> String {
    let hint = if version > latest::MAX {
        "upgrade chaos-host, or rebuild the plugin against an older chaos-sdk"
    } else {
        "rebuild the plugin against a current chaos-sdk"
    };
    format!(
        "built against contract chaos:plugin@{version}, but this chaos-host supports contract versions {} ({hint})",
        supported()
    )
}

fn supports(version: Version) -> bool {
    SUPPORTED
        .iter()
        .any(|&(min, max)| min <= version && version <= max)
}

/// The version in the `chaos:contract-version` custom sections of `bytes`
/// (a component, its core modules included), if there is one. Read before
/// the component is compiled: a version this host does not speak is
/// refused without compiling it. Several sections must agree.
pub fn section_version(bytes: &[u8]) -> anyhow::Result<Option<Version>> {
    let mut found: Option<Version> = None;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let Ok(wasmparser::Payload::CustomSection(s)) = payload else {
            continue;
        };
        if s.name() != SECTION {
            continue;
        }
        let text = std::str::from_utf8(s.data()).unwrap_or("");
        let Some(v) = Version::parse(text) else {
            bail!(
                "its {SECTION} section holds {:?}, not a version MAJOR.MINOR.PATCH (rebuild it with chaos-sdk)",
                String::from_utf8_lossy(&s.data()[..s.data().len().min(40)])
            );
        };
        match found {
            Some(f) if f != v => bail!(
                "it carries two {SECTION} sections, {f} and {v}: it was linked from code built by different chaos-sdk versions (rebuild it)"
            ),
            _ => found = Some(v),
        }
    }
    if let Some(v) = found
        && !supports(v)
    {
        bail!(refusal(v));
    }
    Ok(found)
}

/// Which world (`"fault"` or `"assertion"`) and contract version a
/// compiled component speaks. The section (read by [`section_version`])
/// decides the version when present; the exports must agree with it.
pub fn detect(
    engine: &wasmtime::Engine,
    section: Option<Version>,
    component: &Component,
) -> anyhow::Result<(&'static str, Version)> {
    let ty = component.component_type();
    for (name, _) in ty.exports(engine) {
        for (iface, kind) in [
            ("chaos:plugin/fault@", "fault"),
            ("chaos:plugin/assertion@", "assertion"),
            ("chaos:plugin/client@", "client"),
        ] {
            let Some(text) = name.strip_prefix(iface) else {
                continue;
            };
            let Some(exported) = Version::parse(text) else {
                bail!("it exports {name}, whose version is not MAJOR.MINOR.PATCH");
            };
            if let Some(v) = section
                && v != exported
            {
                bail!(
                    "its {SECTION} section says {v} but it exports {name}: the component was not built by one chaos-sdk (rebuild it)"
                );
            }
            if !supports(exported) {
                bail!(refusal(exported));
            }
            return Ok((kind, exported));
        }
    }
    bail!(
        "not a chaos plugin: it exports none of chaos:plugin/fault, chaos:plugin/assertion, chaos:plugin/client"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each module's range ends at the version its WIT declares, and the
    /// ranges neither overlap nor leave the newest behind: the one written
    /// version (the WIT package line) is what MIN/MAX restate.
    #[test]
    fn ranges_match_their_wit() {
        for (wit, max) in [
            (v0_1::WIT, v0_1::MAX),
            (v0_2::WIT, v0_2::MAX),
            (v0_3::WIT, v0_3::MAX),
        ] {
            let line = wit
                .lines()
                .find_map(|l| l.strip_prefix("package chaos:plugin@"))
                .and_then(|r| r.strip_suffix(';'))
                .unwrap();
            assert_eq!(Version::parse(line), Some(max));
        }
        for w in SUPPORTED.windows(2) {
            assert!(w[0].1 < w[1].0, "{:?}", w);
        }
        assert_eq!(SUPPORTED.last().unwrap().1, latest::MAX);
    }

    /// Every directory under wit/deps/ is a supported version: a frozen
    /// version no module serves would be a version silently dropped.
    #[test]
    fn every_wit_dir_is_supported() {
        let deps = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit/deps");
        let mut seen = 0;
        for e in std::fs::read_dir(&deps).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            let v = name.strip_prefix("chaos-plugin@").unwrap();
            let v = Version::parse(v).unwrap();
            assert!(supports(v), "wit/deps/{name} is not served by any module");
            seen += 1;
        }
        assert!(seen >= 3);
    }

    #[test]
    fn refusals_name_the_supported_range() {
        let e = refusal(Version::from_static("9.0.0"));
        assert!(e.contains("chaos:plugin@9.0.0"), "{e}");
        assert!(e.contains("0.1.0 to 0.1.1, 0.2.0, 0.3.0"), "{e}");
        assert!(e.contains("upgrade chaos-host"), "{e}");
        assert!(!supports(Version::from_static("0.1.2")));
        assert!(supports(Version::from_static("0.1.0")));
    }
}
