//! A builder for `describe()` results, so plugins state what they need in a
//! few readable lines.

use crate::{Capability, ParamSpec, ParamType, PluginInfo, PluginKind};

/// Start describing a fault plugin.
pub fn fault_info(name: &str, version: &str) -> InfoBuilder {
    InfoBuilder::new(name, version, PluginKind::Fault)
}

/// Start describing an assertion plugin.
pub fn assertion_info(name: &str, version: &str) -> InfoBuilder {
    InfoBuilder::new(name, version, PluginKind::Assertion)
}

/// Builds a [`PluginInfo`].
pub struct InfoBuilder(PluginInfo);

impl InfoBuilder {
    fn new(name: &str, version: &str, kind: PluginKind) -> Self {
        Self(PluginInfo {
            name: name.into(),
            version: version.into(),
            author: String::new(),
            description: String::new(),
            kind,
            capabilities: Vec::new(),
            params: Vec::new(),
        })
    }
    /// One sentence on what the plugin does.
    pub fn describe(mut self, text: &str) -> Self {
        self.0.description = text.into();
        self
    }
    /// Who wrote it.
    pub fn author(mut self, author: &str) -> Self {
        self.0.author = author.into();
        self
    }
    /// Declare a capability the plugin needs; the user must grant it.
    pub fn needs(mut self, capability: Capability) -> Self {
        self.0.capabilities.push(capability);
        self
    }
    /// Declare a parameter with its type and default.
    pub fn param(mut self, name: &str, kind: ParamType, default: &str, doc: &str) -> Self {
        self.0.params.push(ParamSpec {
            name: name.into(),
            kind,
            default_value: default.into(),
            doc: doc.into(),
        });
        self
    }
    pub fn build(self) -> PluginInfo {
        self.0
    }
}
