//! What chaos-host reads of a process from `/proc/<pid>/stat`: its state,
//! process group and start time. One parser for every caller.

use nix::unistd::Pid;

/// The fields of `/proc/<pid>/stat` chaos-host uses.
pub struct Stat {
    /// Scheduler state letter (R, S, T, Z, ...).
    pub state: char,
    pub pgrp: i32,
    /// Clock ticks since boot; with the pid, names one process for good.
    pub start: u64,
}

pub fn stat(pid: Pid) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parens: the fields follow the
    // last ')', starting with the state (field 3 overall).
    let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

/// Pids whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| stat(Pid::from_raw(pid)).is_some_and(|s| s.pgrp == pgid))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_stat_is_read() {
        let me = stat(Pid::this()).unwrap();
        // The main thread's state: the test harness may be waiting on us.
        assert!(me.state.is_ascii_uppercase());
        assert_eq!(me.pgrp, nix::unistd::getpgrp().as_raw());
        assert!(me.start > 0);
        assert!(group_members(me.pgrp).contains(&Pid::this().as_raw()));
    }
}
