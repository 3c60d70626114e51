//! The log both binaries (chaos-host, chaos-bench) write to stderr.

/// Log to stderr with `filter` (tracing's syntax, e.g. `info`, `debug`).
/// The FUSE library logs every reply to a killed node's interrupted request
/// as an error: expected under restarts, so `fuser` is quiet unless the
/// filter names it (`CHAOS_LOG=fuser=debug`). A filter that does not parse
/// falls back to `info`. Plugin text reaches it escaped (chaos_plugin's
/// `clip`, `printable`).
pub fn init(filter: &str) {
    let filter = if filter.contains("fuser") {
        filter.to_string()
    } else {
        format!("{filter},fuser=off")
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,fuser=off")),
        )
        .with_writer(std::io::stderr)
        // Colours for a terminal only (and not with NO_COLOR): in a file
        // or a CI log they are escape sequences in the text.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .with_target(false)
        .init();
}
