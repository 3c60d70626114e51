//! A fault that only calls the host, for `chaos-host bench`: `calls` calls
//! of `host.random` in one `inject`, so the bench can separate the cost of
//! one host call from the cost of instantiating and entering the plugin.

use chaos_sdk::{CycleInfo, Fault, ParamType, Params, PluginInfo, host};

struct BenchCalls;

impl Fault for BenchCalls {
    fn describe() -> PluginInfo {
        chaos_sdk::fault_info("bench_calls", env!("CARGO_PKG_VERSION"))
            .author("chaos-host bench")
            .describe("calls host.random `calls` times (benchmark only)")
            .param("calls", ParamType::Integer, "0", "host calls per inject")
            .build()
    }

    fn inject(cycle: CycleInfo) -> Result<(), String> {
        let mut acc = 0u64;
        for _ in 0..cycle.param_u64("calls", 0) {
            acc = acc.wrapping_add(host::random());
        }
        // Keep the loop from being optimised away.
        if acc == 1 {
            host::info("1");
        }
        Ok(())
    }
}

chaos_sdk::export_fault!(BenchCalls);
