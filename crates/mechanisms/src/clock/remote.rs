//! A clock lease on a remote host, seen from chaos-host: the uploaded
//! binary's `clock-lease` runs there over the host's SSH master and holds
//! the offset until its stdin closes ([`crate::clock::lease_main`]).
//! Closing stdin is the whole undo: also when chaos-host dies, its ssh
//! client goes, the session closes, and the helper resets the slots.

use crate::clock::LeaseReport;
use chaos_ssh::Host;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout};

pub struct ClockLease {
    child: Child,
    out: BufReader<ChildStdout>,
    /// The host's name, for messages.
    host: String,
}

impl ClockLease {
    /// Start the lease (blocking until the helper has set the offset): the
    /// lease and its first report, or why it could not start. A lease
    /// whose report shows nothing set is still returned: ending it resets
    /// what was set and ends the helper.
    pub fn start(
        host: &Host,
        bin: &str,
        pgid: i32,
        step_ns: i64,
        ppm: i64,
    ) -> Result<(Self, LeaseReport), String> {
        let mut child = host.clock_lease(bin, pgid, step_ns, ppm)?;
        let out = child.stdout.take().expect("stdout is piped");
        let mut lease = Self {
            child,
            out: BufReader::new(out),
            host: host.spec.name.clone(),
        };
        match lease.report() {
            Ok(r) => Ok((lease, r)),
            Err(e) => {
                lease.finish();
                Err(e)
            }
        }
    }

    /// The helper's next report line; when there is none, its exit status
    /// and stderr (a binary that cannot run there says so).
    fn report(&mut self) -> Result<LeaseReport, String> {
        let mut line = String::new();
        match self.out.read_line(&mut line) {
            Ok(n) if n > 0 => serde_json::from_str(&line).map_err(|e| {
                format!(
                    "host {}: the clock-lease helper said {:?}: {e}",
                    self.host,
                    line.trim()
                )
            }),
            got => {
                drop(self.child.stdin.take());
                let status = self.child.wait();
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                Err(format!(
                    "host {}: the clock-lease helper ended without a report ({}{}){}",
                    self.host,
                    match status {
                        Ok(s) => s.to_string(),
                        Err(e) => format!("waiting for ssh: {e}"),
                    },
                    got.err()
                        .map(|e| format!("; reading: {e}"))
                        .unwrap_or_default(),
                    if err.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", err.trim())
                    }
                ))
            }
        }
    }

    /// End the lease: close the helper's stdin, read its reset report,
    /// reap the session (blocking).
    pub fn end(mut self) -> Result<LeaseReport, String> {
        drop(self.child.stdin.take());
        let r = self.report();
        self.finish();
        r
    }

    fn finish(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for ClockLease {
    /// A lease dropped unended (a cancelled cycle) still resets there and
    /// leaves no ssh behind.
    fn drop(&mut self) {
        self.finish();
    }
}
