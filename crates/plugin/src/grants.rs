//! Capabilities: declared by the plugin, granted by the user, checked by the
//! host before the run and again on every call. Default deny.

use super::Capability;
use anyhow::bail;
use std::collections::BTreeSet;

pub fn name(c: Capability) -> &'static str {
    match c {
        Capability::Signal => "signal",
        Capability::Pause => "pause",
        Capability::Partition => "partition",
        Capability::Clock => "clock",
        Capability::Restart => "restart",
        Capability::Disk => "disk",
        Capability::Link => "link",
    }
}

pub fn parse(s: &str) -> anyhow::Result<Capability> {
    Ok(match s.trim() {
        "signal" => Capability::Signal,
        "pause" => Capability::Pause,
        "partition" => Capability::Partition,
        "clock" => Capability::Clock,
        "restart" => Capability::Restart,
        "disk" => Capability::Disk,
        "link" => Capability::Link,
        other => {
            bail!(
                "unknown capability {other:?} (known: signal, pause, partition, clock, restart, disk, link)"
            )
        }
    })
}

/// What one plugin was granted.
#[derive(Clone, Debug, Default)]
pub struct Grants {
    plugin: String,
    granted: BTreeSet<&'static str>,
}

impl Grants {
    pub fn new(plugin: &str) -> Self {
        Self {
            plugin: plugin.into(),
            granted: BTreeSet::new(),
        }
    }

    pub fn grant(&mut self, c: Capability) {
        self.granted.insert(name(c));
    }

    /// Before the run: refuse a plugin that declares more than it was given.
    pub fn check_declared(&self, label: &str, declared: &[Capability]) -> anyhow::Result<()> {
        let missing: Vec<&str> = declared
            .iter()
            .map(|&c| name(c))
            .filter(|c| !self.granted.contains(c))
            .collect();
        if !missing.is_empty() {
            bail!(
                "plugin {label} needs capabilities not granted: {} (grant with `{} = [{}]` under [grants] in the campaign, or --allow {}={})",
                missing.join(", "),
                self.plugin,
                missing
                    .iter()
                    .map(|m| format!("\"{m}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
                self.plugin,
                missing.join(",")
            );
        }
        Ok(())
    }

    /// On every call: the reason a use is refused, if it is.
    pub fn allow(&self, c: Capability, declared: &[Capability]) -> Result<(), String> {
        let n = name(c);
        if !declared.contains(&c) {
            return Err(format!(
                "capability `{n}` was not declared by plugin {} in describe(); refused",
                self.plugin
            ));
        }
        if !self.granted.contains(n) {
            return Err(format!(
                "capability `{n}` not granted to plugin {}; refused (grant with --allow {}={n})",
                self.plugin, self.plugin
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_denies_and_names_the_fix() {
        let g = Grants::new("kill");
        let e = g
            .check_declared("kill@0.1.0", &[Capability::Signal])
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs capabilities not granted: signal"), "{e}");
        assert!(e.contains("--allow kill=signal"), "{e}");
        assert!(g.allow(Capability::Signal, &[Capability::Signal]).is_err());
    }

    #[test]
    fn granted_and_declared_is_allowed() {
        let mut g = Grants::new("kill");
        g.grant(Capability::Signal);
        g.check_declared("kill@0.1.0", &[Capability::Signal])
            .unwrap();
        g.allow(Capability::Signal, &[Capability::Signal]).unwrap();
    }

    #[test]
    fn granted_but_undeclared_is_refused() {
        let mut g = Grants::new("sneaky");
        g.grant(Capability::Signal);
        let e = g.allow(Capability::Signal, &[]).unwrap_err();
        assert!(e.contains("not declared"), "{e}");
    }

    #[test]
    fn unknown_capability_named() {
        assert!(parse("root").unwrap_err().to_string().contains("\"root\""));
    }
}
