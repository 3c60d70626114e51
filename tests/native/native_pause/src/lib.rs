//! A native fault plugin for the `--native-plugin` test: pauses node 1 for
//! 300 ms once a quarter of the burst is issued, through the C ABI of
//! sdk/native/chaos_native.h. No dependencies: only the ABI.

use std::ffi::{CStr, CString, c_char, c_void};

#[repr(C)]
pub struct ChaosHost {
    ctx: *mut c_void,
    log: extern "C" fn(*mut c_void, i32, *const c_char),
    random: extern "C" fn(*mut c_void) -> u64,
    sleep_ms: extern "C" fn(*mut c_void, u32),
    wait_writes: extern "C" fn(*mut c_void, u32) -> u32,
    signal: extern "C" fn(*mut c_void, u32, i32) -> i32,
    pause: extern "C" fn(*mut c_void, u32, u32) -> i32,
    partition: extern "C" fn(*mut c_void, *const c_char, u32) -> i32,
    clock_offset: extern "C" fn(*mut c_void, u32, i64, u32) -> i32,
}

#[unsafe(no_mangle)]
pub extern "C" fn chaos_native_contract() -> *const c_char {
    c"0.1.0".as_ptr()
}

#[unsafe(no_mangle)]
pub extern "C" fn chaos_native_describe() -> *const c_char {
    c"{\"name\":\"native_pause\",\"version\":\"0.1.0\",\"author\":\"chaos-host tests\",\"description\":\"pause node 1 for 300 ms (native)\",\"kind\":\"fault\",\"capabilities\":[\"pause\"],\"params\":[{\"name\":\"ms\",\"kind\":\"integer\",\"default\":\"300\",\"doc\":\"pause length\"}]}".as_ptr()
}

/// The `writes` field of the cycle JSON, without a JSON dependency.
fn writes(cycle: &str) -> u32 {
    cycle
        .split("\"writes\":")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// # Safety
/// Called by chaos-host with a valid cycle string and host table.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chaos_native_inject(
    cycle: *const c_char,
    host: *const ChaosHost,
) -> *mut c_char {
    let host = unsafe { &*host };
    let cycle = unsafe { CStr::from_ptr(cycle) }
        .to_string_lossy()
        .into_owned();
    (host.wait_writes)(host.ctx, writes(&cycle) / 4);
    (host.log)(host.ctx, 1, c"native_pause: pausing node 1".as_ptr());
    if (host.pause)(host.ctx, 1, 300) != 0 {
        return CString::new("the host refused the pause")
            .unwrap()
            .into_raw();
    }
    (host.sleep_ms)(host.ctx, 300);
    std::ptr::null_mut()
}

/// # Safety
/// `message` must come from `chaos_native_inject`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn chaos_native_free(message: *mut c_char) {
    if !message.is_null() {
        drop(unsafe { CString::from_raw(message) });
    }
}
