//! Clock skew by redirecting the vDSO (the technique of Chaos Mesh's
//! TimeChaos, written afresh): how a node process is patched and how its
//! offset is set.
//!
//! Why this design:
//! - Every runtime reads the wall clock through the vDSO (glibc, musl, Go,
//!   which bypasses libc), so patching the vDSO's `clock_gettime`,
//!   `gettimeofday` and `time` entries reaches C, Rust, Python and Go alike,
//!   without LD_PRELOAD and without touching sleeps or the monotonic clock
//!   (libfaketime's `DONT_FAKE_MONOTONIC` breaks Python's `time.sleep`).
//! - The patch is made once per process: a helper process (`chaos-host
//!   clock-patch PID..`, hidden) seizes every thread with ptrace, injects an
//!   `mmap` syscall (through a `syscall` instruction found in the vDSO
//!   itself, so no tracee code is overwritten for it), copies [`CODE`] into
//!   the new page, writes a 13-byte absolute jump over each entry, and
//!   detaches. The helper is a separate process because a ptrace stop of a
//!   node, our child, would otherwise reach the host's own reaper
//!   (`waitpid` reports ptrace stops to every thread of the tracer's
//!   process) and be taken for the node's exit.
//! - The injected code does the real syscall (the jump destroys the entry's
//!   first instructions, and relocating them would need an instruction
//!   decoder) and adds `step + (monotonic - t0) * ppm / 1e6` ns, read from
//!   a data slot in its page. The host writes that slot through
//!   /proc/PID/mem, with no re-attach: set, drift and reset are one write.
//!   Only CLOCK_REALTIME and CLOCK_REALTIME_COARSE move; monotonic clocks
//!   are untouched, as a real wall-clock step would leave them.
//! - A child forked later inherits the page and the jumps (its own copy of
//!   the slot, found through the jump and written too); a child exec'd later
//!   has a fresh vDSO and is patched when the lease's watch finds it. Reset
//!   writes zeros and keeps the patch; a node started again has none.
//!
//! Limits: x86_64 only (the code is x86_64 machine code); a process whose
//! threads cannot be seized (ptrace refused: Yama scope 3, a seccomp or LSM
//! policy, another tracer) cannot be patched and the skew says so.

use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use object::{Object, ObjectSymbol};
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;

/// The injected code, assembled from `vdso_x86_64.S` (`as --64`, then
/// `objcopy -O binary -j .text`): three entries and `off`, which computes
/// the offset in ns from the data at [`DATA`].
#[rustfmt::skip]
pub const CODE: &[u8] = &[
    // cg
    0xb8, 0xe4, 0x00, 0x00, 0x00, // 000: mov eax,0xe4
    0x0f, 0x05, // 005: syscall
    0x48, 0x85, 0xc0, // 007: test rax,rax
    0x75, 0x40, // 00a: jne 4c <cg+0x4c>
    0x83, 0xff, 0x00, // 00c: cmp edi,0x0
    0x74, 0x05, // 00f: je 16 <cg+0x16>
    0x83, 0xff, 0x05, // 011: cmp edi,0x5
    0x75, 0x36, // 014: jne 4c <cg+0x4c>
    0xe8, 0xdc, 0x00, 0x00, 0x00, // 016: call f7 <off>
    0x48, 0x8b, 0x0e, // 01b: mov rcx,QWORD PTR [rsi]
    0x48, 0x69, 0xc9, 0x00, 0xca, 0x9a, 0x3b, // 01e: imul rcx,rcx,0x3b9aca00
    0x48, 0x03, 0x4e, 0x08, // 025: add rcx,QWORD PTR [rsi+0x8]
    0x48, 0x01, 0xc8, // 029: add rax,rcx
    0x48, 0xc7, 0xc1, 0x00, 0xca, 0x9a, 0x3b, // 02c: mov rcx,0x3b9aca00
    0x48, 0x99, // 033: cqo
    0x48, 0xf7, 0xf9, // 035: idiv rcx
    0x48, 0x85, 0xd2, // 038: test rdx,rdx
    0x79, 0x06, // 03b: jns 43 <cg+0x43>
    0x48, 0x01, 0xca, // 03d: add rdx,rcx
    0x48, 0xff, 0xc8, // 040: dec rax
    0x48, 0x89, 0x06, // 043: mov QWORD PTR [rsi],rax
    0x48, 0x89, 0x56, 0x08, // 046: mov QWORD PTR [rsi+0x8],rdx
    0x31, 0xc0, // 04a: xor eax,eax
    0xc3, // 04c: ret
    // gtod
    0xb8, 0x60, 0x00, 0x00, 0x00, // 04d: mov eax,0x60
    0x0f, 0x05, // 052: syscall
    0x48, 0x85, 0xc0, // 054: test rax,rax
    0x75, 0x52, // 057: jne ab <gtod+0x5e>
    0x48, 0x85, 0xff, // 059: test rdi,rdi
    0x74, 0x4d, // 05c: je ab <gtod+0x5e>
    0xe8, 0x94, 0x00, 0x00, 0x00, // 05e: call f7 <off>
    0x48, 0x8b, 0x0f, // 063: mov rcx,QWORD PTR [rdi]
    0x48, 0x69, 0xc9, 0x00, 0xca, 0x9a, 0x3b, // 066: imul rcx,rcx,0x3b9aca00
    0x48, 0x8b, 0x57, 0x08, // 06d: mov rdx,QWORD PTR [rdi+0x8]
    0x48, 0x69, 0xd2, 0xe8, 0x03, 0x00, 0x00, // 071: imul rdx,rdx,0x3e8
    0x48, 0x01, 0xd1, // 078: add rcx,rdx
    0x48, 0x01, 0xc8, // 07b: add rax,rcx
    0x48, 0xc7, 0xc1, 0x00, 0xca, 0x9a, 0x3b, // 07e: mov rcx,0x3b9aca00
    0x48, 0x99, // 085: cqo
    0x48, 0xf7, 0xf9, // 087: idiv rcx
    0x48, 0x85, 0xd2, // 08a: test rdx,rdx
    0x79, 0x06, // 08d: jns 95 <gtod+0x48>
    0x48, 0x01, 0xca, // 08f: add rdx,rcx
    0x48, 0xff, 0xc8, // 092: dec rax
    0x48, 0x89, 0x07, // 095: mov QWORD PTR [rdi],rax
    0x48, 0x89, 0xd0, // 098: mov rax,rdx
    0x31, 0xd2, // 09b: xor edx,edx
    0xb9, 0xe8, 0x03, 0x00, 0x00, // 09d: mov ecx,0x3e8
    0x48, 0xf7, 0xf1, // 0a2: div rcx
    0x48, 0x89, 0x47, 0x08, // 0a5: mov QWORD PTR [rdi+0x8],rax
    0x31, 0xc0, // 0a9: xor eax,eax
    0xc3, // 0ab: ret
    // tm
    0x57, // 0ac: push rdi
    0x48, 0x83, 0xec, 0x10, // 0ad: sub rsp,0x10
    0x31, 0xff, // 0b1: xor edi,edi
    0x48, 0x89, 0xe6, // 0b3: mov rsi,rsp
    0xb8, 0xe4, 0x00, 0x00, 0x00, // 0b6: mov eax,0xe4
    0x0f, 0x05, // 0bb: syscall
    0xe8, 0x35, 0x00, 0x00, 0x00, // 0bd: call f7 <off>
    0x48, 0x8b, 0x0c, 0x24, // 0c2: mov rcx,QWORD PTR [rsp]
    0x48, 0x69, 0xc9, 0x00, 0xca, 0x9a, 0x3b, // 0c6: imul rcx,rcx,0x3b9aca00
    0x48, 0x03, 0x4c, 0x24, 0x08, // 0cd: add rcx,QWORD PTR [rsp+0x8]
    0x48, 0x01, 0xc8, // 0d2: add rax,rcx
    0x48, 0xc7, 0xc1, 0x00, 0xca, 0x9a, 0x3b, // 0d5: mov rcx,0x3b9aca00
    0x48, 0x99, // 0dc: cqo
    0x48, 0xf7, 0xf9, // 0de: idiv rcx
    0x48, 0x85, 0xd2, // 0e1: test rdx,rdx
    0x79, 0x03, // 0e4: jns e9 <tm+0x3d>
    0x48, 0xff, 0xc8, // 0e6: dec rax
    0x48, 0x83, 0xc4, 0x10, // 0e9: add rsp,0x10
    0x5f, // 0ed: pop rdi
    0x48, 0x85, 0xff, // 0ee: test rdi,rdi
    0x74, 0x03, // 0f1: je f6 <tm+0x4a>
    0x48, 0x89, 0x07, // 0f3: mov QWORD PTR [rdi],rax
    0xc3, // 0f6: ret
    // off
    0x48, 0x8b, 0x05, 0x0a, 0x0e, 0x00, 0x00, // 0f7: mov rax,QWORD PTR [rip+0xe0a]
    0x48, 0x85, 0xc0, // 0fe: test rax,rax
    0x74, 0x4b, // 101: je 14e <off+0x57>
    0x57, // 103: push rdi
    0x56, // 104: push rsi
    0x48, 0x83, 0xec, 0x18, // 105: sub rsp,0x18
    0xbf, 0x01, 0x00, 0x00, 0x00, // 109: mov edi,0x1
    0x48, 0x89, 0xe6, // 10e: mov rsi,rsp
    0xb8, 0xe4, 0x00, 0x00, 0x00, // 111: mov eax,0xe4
    0x0f, 0x05, // 116: syscall
    0x48, 0x8b, 0x04, 0x24, // 118: mov rax,QWORD PTR [rsp]
    0x48, 0x69, 0xc0, 0x00, 0xca, 0x9a, 0x3b, // 11c: imul rax,rax,0x3b9aca00
    0x48, 0x03, 0x44, 0x24, 0x08, // 123: add rax,QWORD PTR [rsp+0x8]
    0x48, 0x83, 0xc4, 0x18, // 128: add rsp,0x18
    0x5e, // 12c: pop rsi
    0x5f, // 12d: pop rdi
    0x48, 0x2b, 0x05, 0xcb, 0x0d, 0x00, 0x00, // 12e: sub rax,QWORD PTR [rip+0xdcb]
    0x48, 0xf7, 0x2d, 0xcc, 0x0d, 0x00, 0x00, // 135: imul QWORD PTR [rip+0xdcc]
    0x48, 0xc7, 0xc1, 0x40, 0x42, 0x0f, 0x00, // 13c: mov rcx,0xf4240
    0x48, 0xf7, 0xf9, // 143: idiv rcx
    0x48, 0x03, 0x05, 0xc3, 0x0d, 0x00, 0x00, // 146: add rax,QWORD PTR [rip+0xdc3]
    0xc3, // 14d: ret
    0x48, 0x8b, 0x05, 0xbb, 0x0d, 0x00, 0x00, // 14e: mov rax,QWORD PTR [rip+0xdbb]
    0xc3, // 155: ret
];

/// Where each replacement entry starts in [`CODE`].
const CLOCK_GETTIME: u64 = 0x000;
const GETTIMEOFDAY: u64 = 0x04d;
const TIME: u64 = 0x0ac;
/// The data slot in the page: t0 (monotonic ns), ppm, step (ns), magic.
pub const DATA: u64 = 0xf00;
const MAGIC: &[u8; 8] = b"chaosclk";
const PAGE: u64 = 4096;
/// `movabs r11, imm64; jmp r11`: r11 is scratch in the SysV ABI.
const JUMP_LEN: usize = 13;

/// An offset of the wall clock: `step + (monotonic - t0) * ppm / 1e6` ns.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Skew {
    pub step_ns: i64,
    pub ppm: i64,
    /// CLOCK_MONOTONIC (system-wide) when the drift started, ns.
    pub t0_ns: i64,
}

impl Skew {
    /// The slot as the code reads it: t0, ppm, step, magic.
    fn bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&self.t0_ns.to_le_bytes());
        b[8..16].copy_from_slice(&self.ppm.to_le_bytes());
        b[16..24].copy_from_slice(&self.step_ns.to_le_bytes());
        b[24..32].copy_from_slice(MAGIC);
        b
    }
}

/// CLOCK_MONOTONIC now, ns (the clock the injected code reads).
pub fn monotonic_ns() -> i64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always readable");
    t.tv_sec() * 1_000_000_000 + t.tv_nsec()
}

/// Why vDSO patching cannot be used on this host, if it cannot.
/// `CHAOS_CLOCK_PTRACE=off` refuses it on purpose (tests of the fallback).
pub fn refusal() -> Option<String> {
    if !cfg!(target_arch = "x86_64") {
        return Some(format!(
            "vDSO clock patching is x86_64 only, this host is {}",
            std::env::consts::ARCH
        ));
    }
    if std::env::var("CHAOS_CLOCK_PTRACE").is_ok_and(|v| v == "off") {
        return Some("ptrace refused by CHAOS_CLOCK_PTRACE=off".into());
    }
    let yama = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok()?;
    (yama.trim() == "3")
        .then(|| "ptrace refused: kernel.yama.ptrace_scope is 3 (no attach at all)".to_string())
}

/// The `[vdso]` mapping of `pid`: (start, end).
fn vdso_range(pid: i32) -> Result<(u64, u64), String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| format!("reading /proc/{pid}/maps: {e}"))?;
    let line = maps
        .lines()
        .find(|l| l.ends_with("[vdso]"))
        .ok_or_else(|| {
            format!("pid {pid} has no vDSO mapped (a static binary built without one?)")
        })?;
    let range = line.split_whitespace().next().unwrap_or_default();
    let (a, b) = range.split_once('-').unwrap_or_default();
    let parse = |s: &str| {
        u64::from_str_radix(s, 16).map_err(|e| format!("/proc/{pid}/maps: {range:?}: {e}"))
    };
    Ok((parse(a)?, parse(b)?))
}

/// A process's vDSO: its image and the addresses of the three entries.
struct Vdso {
    start: u64,
    image: Vec<u8>,
    /// (entry address in the process, replacement offset in [`CODE`]).
    entries: Vec<(u64, u64)>,
}

impl Vdso {
    fn read(pid: i32, mem: &File) -> Result<Self, String> {
        let (start, end) = vdso_range(pid)?;
        let mut image = vec![0u8; (end - start) as usize];
        mem.read_exact_at(&mut image, start)
            .map_err(|e| format!("reading pid {pid}'s vDSO: {e}"))?;
        let elf = object::File::parse(&*image)
            .map_err(|e| format!("pid {pid}'s vDSO is not an ELF image: {e}"))?;
        let symbols: HashMap<String, (u64, u64)> = elf
            .dynamic_symbols()
            .filter_map(|s| Some((s.name().ok()?.to_string(), (s.address(), s.size()))))
            .collect();
        let mut entries = Vec::new();
        for (name, target) in [
            ("__vdso_clock_gettime", CLOCK_GETTIME),
            ("__vdso_gettimeofday", GETTIMEOFDAY),
            ("__vdso_time", TIME),
        ] {
            let &(addr, size) = symbols
                .get(name)
                .ok_or_else(|| format!("pid {pid}'s vDSO has no {name}"))?;
            if size < JUMP_LEN as u64 {
                return Err(format!(
                    "pid {pid}'s {name} is {size} bytes, too short for a {JUMP_LEN}-byte jump"
                ));
            }
            // The vDSO is linked at 0 and mapped whole at `start`.
            entries.push((start + addr, target));
        }
        Ok(Self {
            start,
            image,
            entries,
        })
    }

    /// The injected page the entries already jump to (a forked child
    /// inherits them), checked by its magic.
    fn patched_page(&self, mem: &File) -> Option<u64> {
        let (entry, target) = self.entries[0];
        let at = (entry - self.start) as usize;
        let code = self.image.get(at..at + JUMP_LEN)?;
        if code[0..2] != [0x49, 0xbb] || code[10..13] != [0x41, 0xff, 0xe3] {
            return None;
        }
        let dest = u64::from_le_bytes(code[2..10].try_into().ok()?);
        let page = dest.checked_sub(target)?;
        let mut magic = [0u8; 8];
        mem.read_exact_at(&mut magic, page + DATA + 24).ok()?;
        (&magic == MAGIC).then_some(page)
    }

    /// A `syscall` instruction in the vDSO (its fallback path): where the
    /// injected `mmap` runs, so no tracee code is overwritten for it.
    fn syscall_insn(&self) -> Option<u64> {
        let i = self.image.windows(2).position(|w| w == [0x0f, 0x05])?;
        Some(self.start + i as u64)
    }
}

fn open_mem(pid: i32, write: bool) -> Result<File, String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .open(format!("/proc/{pid}/mem"))
        .map_err(|e| format!("opening /proc/{pid}/mem: {e}"))
}

/// The injected page of `pid`, if its vDSO is patched.
pub fn patched_page(pid: i32) -> Result<Option<u64>, String> {
    let mem = open_mem(pid, false)?;
    Ok(Vdso::read(pid, &mem)?.patched_page(&mem))
}

/// Set the skew of a patched process (one write, no ptrace).
pub fn write_skew(pid: i32, page: u64, skew: Skew) -> Result<(), String> {
    open_mem(pid, true)?
        .write_all_at(&skew.bytes(), page + DATA)
        .map_err(|e| format!("writing pid {pid}'s clock offset: {e}"))
}

/// The threads of one process, stopped under ptrace; detached on drop.
#[cfg(target_arch = "x86_64")]
struct Stopped {
    /// Each thread and the signal to hand back when it is let go (one that
    /// arrived while it was held).
    threads: Vec<(Pid, Option<Signal>)>,
}

#[cfg(target_arch = "x86_64")]
impl Stopped {
    /// Seize and stop every thread of `pid` (again until no new one shows:
    /// a stopped thread spawns none).
    fn attach(pid: i32) -> Result<Self, String> {
        let mut me = Self {
            threads: Vec::new(),
        };
        loop {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
                .map_err(|e| format!("listing pid {pid}'s threads: {e}"))?;
            let mut new = 0;
            for t in tasks.flatten() {
                let Some(tid) = t.file_name().to_str().and_then(|s| s.parse().ok()) else {
                    continue;
                };
                let tid = Pid::from_raw(tid);
                if me.threads.iter().any(|(t, _)| *t == tid) {
                    continue;
                }
                match ptrace::seize(tid, ptrace::Options::empty()) {
                    Ok(()) => {}
                    Err(nix::errno::Errno::ESRCH) => continue, // exited meanwhile
                    Err(e) => {
                        return Err(format!(
                            "ptrace refused: PTRACE_SEIZE of pid {pid} thread {tid}: {e}"
                        ));
                    }
                }
                me.threads.push((tid, None));
                new += 1;
                ptrace::interrupt(tid).map_err(|e| format!("PTRACE_INTERRUPT {tid}: {e}"))?;
                let i = me.threads.len() - 1;
                me.threads[i].1 = me.wait_stop(tid)?;
            }
            if new == 0 {
                break;
            }
        }
        if me.threads.is_empty() {
            return Err(format!("pid {pid} has no thread left to patch"));
        }
        Ok(me)
    }

    /// Wait until `tid` is in a ptrace stop; the signal it was stopped for,
    /// if a signal (to be handed back on detach).
    fn wait_stop(&self, tid: Pid) -> Result<Option<Signal>, String> {
        match waitpid(tid, Some(WaitPidFlag::__WALL)) {
            Ok(WaitStatus::PtraceEvent(..)) => Ok(None),
            Ok(WaitStatus::Stopped(_, sig)) => Ok(Some(sig)),
            Ok(other) => Err(format!("thread {tid} did not stop: {other:?}")),
            Err(e) => Err(format!("waiting for thread {tid}: {e}")),
        }
    }

    /// Run one syscall in thread `tid` at the `syscall` instruction `at`,
    /// then put its registers back.
    fn syscall(&mut self, tid: Pid, at: u64, nr: u64, args: [u64; 6]) -> Result<u64, String> {
        let saved = ptrace::getregs(tid).map_err(|e| format!("PTRACE_GETREGS {tid}: {e}"))?;
        let mut r = saved;
        r.rip = at;
        r.rax = nr;
        [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9] = args;
        // No syscall restart for our registers (the thread may have been
        // stopped inside one); the saved ones restart it on detach.
        r.orig_rax = u64::MAX;
        ptrace::setregs(tid, r).map_err(|e| format!("PTRACE_SETREGS {tid}: {e}"))?;
        let result = (|| {
            for _ in 0..16 {
                ptrace::step(tid, None).map_err(|e| format!("PTRACE_SINGLESTEP {tid}: {e}"))?;
                match waitpid(tid, Some(WaitPidFlag::__WALL)) {
                    Ok(WaitStatus::Stopped(_, Signal::SIGTRAP)) => {
                        let r = ptrace::getregs(tid)
                            .map_err(|e| format!("PTRACE_GETREGS {tid}: {e}"))?;
                        if r.rip == at + 2 {
                            return Ok(r.rax);
                        }
                    }
                    // A signal arrived before the step: keep it for the
                    // detach, step again.
                    Ok(WaitStatus::Stopped(_, sig)) => self.pending(tid, sig),
                    Ok(WaitStatus::PtraceEvent(..)) => {}
                    Ok(other) => {
                        return Err(format!(
                            "thread {tid} during the injected syscall: {other:?}"
                        ));
                    }
                    Err(e) => return Err(format!("waiting for thread {tid}: {e}")),
                }
            }
            Err(format!("thread {tid} did not run the injected syscall"))
        })();
        ptrace::setregs(tid, saved)
            .map_err(|e| format!("restoring thread {tid}'s registers: {e}"))?;
        result
    }

    fn pending(&mut self, tid: Pid, sig: Signal) {
        if let Some(t) = self.threads.iter_mut().find(|(t, _)| *t == tid) {
            t.1 = Some(sig);
        }
    }

    /// Step every thread whose next instruction lies where a jump is about
    /// to be written, until it is past it.
    fn step_clear_of(&mut self, ranges: &[(u64, u64)]) -> Result<(), String> {
        let inside = |rip: u64| ranges.iter().any(|&(a, b)| rip >= a && rip < b);
        for i in 0..self.threads.len() {
            let tid = self.threads[i].0;
            for _ in 0..64 {
                let r = ptrace::getregs(tid).map_err(|e| format!("PTRACE_GETREGS {tid}: {e}"))?;
                if !inside(r.rip) {
                    break;
                }
                ptrace::step(tid, None).map_err(|e| format!("PTRACE_SINGLESTEP {tid}: {e}"))?;
                if let WaitStatus::Stopped(_, sig) = waitpid(tid, Some(WaitPidFlag::__WALL))
                    .map_err(|e| format!("waiting for thread {tid}: {e}"))?
                    && sig != Signal::SIGTRAP
                {
                    self.pending(tid, sig);
                }
            }
            let r = ptrace::getregs(tid).map_err(|e| format!("PTRACE_GETREGS {tid}: {e}"))?;
            if inside(r.rip) {
                return Err(format!("thread {tid} stays inside a vDSO clock entry"));
            }
        }
        Ok(())
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for Stopped {
    fn drop(&mut self) {
        for (tid, sig) in &self.threads {
            let _ = ptrace::detach(*tid, *sig);
        }
    }
}

/// Elsewhere the injected code (x86_64 machine code) cannot run.
#[cfg(not(target_arch = "x86_64"))]
pub fn patch(_pid: i32) -> Result<u64, String> {
    Err(refusal().unwrap_or_default())
}

/// Patch process `pid` (ptrace; run in the helper process): its page, with
/// the skew at zero. A process already patched is left as it is.
#[cfg(target_arch = "x86_64")]
pub fn patch(pid: i32) -> Result<u64, String> {
    let mut stopped = Stopped::attach(pid)?;
    let mem = open_mem(pid, true)?;
    let vdso = Vdso::read(pid, &mem)?;
    if let Some(page) = vdso.patched_page(&mem) {
        return Ok(page);
    }
    let at = vdso
        .syscall_insn()
        .ok_or_else(|| format!("pid {pid}'s vDSO has no syscall instruction to borrow"))?;
    const MMAP: u64 = 9;
    let prot = (libc::PROT_READ | libc::PROT_EXEC) as u64;
    let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
    let tid = stopped.threads[0].0;
    let page = stopped.syscall(tid, at, MMAP, [0, PAGE, prot, flags, u64::MAX, 0])?;
    if page > u64::MAX - 4095 {
        return Err(format!(
            "mmap in pid {pid} failed: errno {}",
            page.wrapping_neg()
        ));
    }
    // The page is read+exec for the process; /proc/PID/mem writes past
    // that (as a debugger's breakpoints do).
    mem.write_all_at(CODE, page)
        .and_then(|()| mem.write_all_at(&Skew::default().bytes(), page + DATA))
        .map_err(|e| format!("writing the clock code into pid {pid}: {e}"))?;
    let ranges: Vec<(u64, u64)> = vdso
        .entries
        .iter()
        .map(|&(e, _)| (e, e + JUMP_LEN as u64))
        .collect();
    stopped.step_clear_of(&ranges)?;
    for &(entry, target) in &vdso.entries {
        let mut jump = [0u8; JUMP_LEN];
        jump[0..2].copy_from_slice(&[0x49, 0xbb]); // movabs r11, imm64
        jump[2..10].copy_from_slice(&(page + target).to_le_bytes());
        jump[10..13].copy_from_slice(&[0x41, 0xff, 0xe3]); // jmp r11
        mem.write_all_at(&jump, entry)
            .map_err(|e| format!("patching pid {pid}'s vDSO at {entry:#x}: {e}"))?;
    }
    Ok(page)
}

/// The hidden `clock-patch` command: patch each pid, one line each:
/// `PID ok PAGE` or `PID err MESSAGE`.
pub fn helper_main(pids: &[i32]) {
    for &pid in pids {
        match patch(pid) {
            Ok(page) => println!("{pid} ok {page:#x}"),
            Err(e) => println!("{pid} err {}", e.replace('\n', " ")),
        }
    }
}

/// Patch `pids` through the helper process (see the module doc for why a
/// separate process): each pid's page, or why not.
pub fn patch_via_helper(pids: &[i32]) -> Vec<(i32, Result<u64, String>)> {
    // Unit tests have no `clock-patch` command in their binary and no
    // reaper to confuse: they patch in-process.
    if cfg!(test) {
        return pids.iter().map(|&p| (p, patch(p))).collect();
    }
    let fail = |e: String| pids.iter().map(|&p| (p, Err(e.clone()))).collect();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return fail(format!("finding chaos-host's own binary: {e}")),
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("clock-patch")
        .args(pids.iter().map(|p| p.to_string()))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: runs in the forked child before exec, one async-signal-safe
    // prctl: a helper never outlives a killed chaos-host.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => return fail(format!("running the clock-patch helper: {e}")),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    pids.iter()
        .map(|&p| {
            let line = text
                .lines()
                .find(|l| l.split(' ').next() == Some(&p.to_string()));
            let got = match line.map(|l| l.splitn(3, ' ').collect::<Vec<_>>()) {
                Some(v) if v.len() == 3 && v[1] == "ok" => {
                    u64::from_str_radix(v[2].trim_start_matches("0x"), 16)
                        .map_err(|e| format!("clock-patch helper said {:?}: {e}", v[2]))
                }
                Some(v) if v.len() == 3 => Err(v[2].to_string()),
                _ => Err(format!(
                    "the clock-patch helper gave no answer for pid {p} ({}; {})",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
            };
            (p, got)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    /// A child that prints its wall clock (ms) and monotonic clock (ms)
    /// each time it reads a line.
    fn clock_child() -> (std::process::Child, impl FnMut() -> (i64, i64)) {
        let mut child = Command::new("python3")
            .args(["-u", "-c", "import sys,time\nfor _ in sys.stdin:\n    print(int(time.time()*1000), int(time.monotonic()*1000), flush=True)"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let read = move || {
            use std::io::Write;
            writeln!(stdin).unwrap();
            let mut l = String::new();
            out.read_line(&mut l).unwrap();
            let v: Vec<i64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            (v[0], v[1])
        };
        (child, read)
    }

    fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }

    #[test]
    fn a_patched_process_reads_the_offset_and_its_monotonic_clock_is_untouched() {
        if refusal().is_some() {
            return;
        }
        let (mut child, mut read) = clock_child();
        let (w0, m0) = read();
        let pid = child.id() as i32;
        assert_eq!(patched_page(pid).unwrap(), None);
        let page = patch(pid).unwrap();
        assert_eq!(patched_page(pid).unwrap(), Some(page));
        // Patched at zero: no change.
        let (w, _) = read();
        assert!((w - now_ms()).abs() < 100, "unskewed {w} vs {}", now_ms());
        write_skew(
            pid,
            page,
            Skew {
                step_ns: -3_600_000_000_000,
                ppm: 0,
                t0_ns: 0,
            },
        )
        .unwrap();
        let (w, m) = read();
        let off = w - now_ms();
        assert!((off + 3_600_000).abs() < 100, "offset {off}");
        assert!(m >= m0 && m - m0 < 5000, "monotonic moved: {m0} -> {m}");
        // Drift: 0.5 s per s from now.
        write_skew(
            pid,
            page,
            Skew {
                step_ns: 0,
                ppm: 500_000,
                t0_ns: monotonic_ns(),
            },
        )
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(400));
        let (w, _) = read();
        let off = w - now_ms();
        assert!(
            (150..300).contains(&off),
            "drift offset {off} after 400 ms at 500000 ppm"
        );
        write_skew(pid, page, Skew::default()).unwrap();
        let (w, _) = read();
        assert!((w - now_ms()).abs() < 100);
        // Patching again finds the page.
        assert_eq!(patch(pid).unwrap(), page);
        assert!(w0 > 0);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
