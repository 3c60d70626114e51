//! `chaos-host new-plugin`: a ready plugin crate, built with nothing but
//! `chaos-sdk`, plus a script that runs it against the reference system.

use anyhow::{Context, bail};
use std::path::PathBuf;

const FAULT: &str = include_str!("../templates/fault.rs.txt");
const ASSERTION: &str = include_str!("../templates/assertion.rs.txt");
const CLIENT: &str = include_str!("../templates/client.rs.txt");
const CLIENT_CAMPAIGN: &str = include_str!("../templates/client-campaign.toml.txt");
const CARGO_TOML: &str = include_str!("../templates/Cargo.toml.txt");
const RUN_SH: &str = include_str!("../templates/run.sh.txt");
const README: &str = include_str!("../templates/README.md.txt");

pub struct NewPlugin {
    pub name: String,
    pub assertion: bool,
    /// A client component (and a campaign that uses it).
    pub client: bool,
    /// Parent directory of the new crate.
    pub dir: PathBuf,
    /// A local chaos-host-sdk to depend on by path (default: the published
    /// version of this host's newest contract).
    pub sdk: Option<PathBuf>,
}

/// Create the crate; returns its directory.
pub fn create(p: &NewPlugin) -> anyhow::Result<PathBuf> {
    let name = &p.name;
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        bail!(
            "new-plugin {name:?}: use lowercase letters, digits and '_', starting with a letter (it is the crate, the plugin and the .wasm name)"
        );
    }
    // A version requirement on the published SDK of this host's newest
    // contract, unless --sdk points at a local checkout.
    let sdk_dep = match &p.sdk {
        None => format!(
            "chaos-host-sdk = \"{}.{}\"",
            chaos_plugin::LATEST.major,
            chaos_plugin::LATEST.minor
        ),
        Some(s) => {
            let sdk = std::fs::canonicalize(s).with_context(|| {
                format!(
                    "new-plugin --sdk {}: no such directory; pass the sdk/ directory of a chaos-host checkout",
                    s.display()
                )
            })?;
            if !sdk.join("Cargo.toml").is_file() {
                bail!(
                    "new-plugin --sdk {}: no Cargo.toml in it; pass the sdk/ directory of a chaos-host checkout",
                    s.display()
                );
            }
            format!("chaos-host-sdk = {{ path = {:?} }}", sdk.to_string_lossy())
        }
    };
    let root = p.dir.join(name);
    if root.exists() {
        bail!(
            "new-plugin: {} already exists; choose another name or --dir",
            root.display()
        );
    }
    let me = std::env::current_exe().context("finding the chaos-host binary")?;
    let wasm = format!("${{CARGO_TARGET_DIR:-target}}/wasm32-wasip2/release/{name}.wasm");
    let plugin_args = if p.client {
        // The client is the campaign's; a built-in fault meets it.
        "--plugin kill_primary_mid_write".to_string()
    } else if p.assertion {
        format!("--plugin \"{wasm}\"")
    } else {
        format!("--plugin \"{wasm}\" --allow {name}=pause")
    };
    let kind = match (p.client, p.assertion) {
        (true, _) => "client",
        (_, true) => "assertion",
        _ => "fault",
    };
    let fill = |t: &str| {
        t.replace("{{name}}", name)
            .replace("{{file}}", name)
            .replace("{{kind}}", kind)
            .replace("{{sdk_dep}}", &sdk_dep)
            .replace("{{chaos_host}}", &me.to_string_lossy())
            .replace("{{plugin_args}}", &plugin_args)
    };
    // Written into a temp dir and renamed, so a failure leaves nothing
    // half-written.
    std::fs::create_dir_all(&p.dir).with_context(|| format!("creating {}", p.dir.display()))?;
    let tmp = p.dir.join(format!(".{name}.new"));
    let _ = std::fs::remove_dir_all(&tmp);
    let write = || -> anyhow::Result<()> {
        std::fs::create_dir_all(tmp.join("src"))?;
        std::fs::write(tmp.join("Cargo.toml"), fill(CARGO_TOML))?;
        let lib = match kind {
            "client" => CLIENT,
            "assertion" => ASSERTION,
            _ => FAULT,
        };
        std::fs::write(tmp.join("src/lib.rs"), fill(lib))?;
        if p.client {
            std::fs::write(tmp.join("campaign.toml"), fill(CLIENT_CAMPAIGN))?;
        }
        std::fs::write(tmp.join("README.md"), fill(README))?;
        std::fs::write(tmp.join(".gitignore"), "/target\n")?;
        let run = tmp.join("run.sh");
        std::fs::write(&run, fill(RUN_SH))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&tmp, &root)?;
        Ok(())
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!("new-plugin: writing {}", root.display())));
    }
    Ok(root)
}
