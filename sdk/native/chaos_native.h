/*
 * chaos-host native plugin ABI 0.1.0 (its own version; it mirrors the fault
 * world of the WebAssembly contract chaos:plugin@0.1.0).
 *
 * Loaded only with `chaos-host run --native-plugin LIB.so`. A native plugin
 * is NOT sandboxed: it runs inside chaos-host with all its privileges, its
 * calls cannot be preempted, and a crash takes chaos-host down. Prefer a
 * WebAssembly component (chaos-sdk); use this only for a fault the sandbox
 * cannot express. Effects still go through the host (grants, journal,
 * rollback), so ask for them through ChaosHost rather than acting directly.
 */
#ifndef CHAOS_NATIVE_H
#define CHAOS_NATIVE_H
#include <stdint.h>

/*
 * `host` and `host->ctx` are valid only during chaos_native_inject, and only
 * on the thread that chaos-host called it on: do not keep them, and do not
 * call host functions from other threads. After the call's deadline every
 * host function refuses (effects return -1), and a later call into the
 * library is skipped until the late one returns.
 */
typedef struct ChaosHost {
    void *ctx;                       /* pass back to every function */
    /* level: 0 debug, 1 info, 2 warn, 3 error */
    void (*log)(void *ctx, int32_t level, const char *message);
    uint64_t (*random)(void *ctx);   /* seeded per cycle: --seed replays */
    void (*sleep_ms)(void *ctx, uint32_t ms);
    /* block until `count` writes were issued or the burst ended */
    uint32_t (*wait_writes)(void *ctx, uint32_t count);
    /* effects: 0 done, -1 refused (the reason is in the cycle record) */
    int32_t (*signal)(void *ctx, uint32_t node, int32_t sig /* 9 or 15 */);
    int32_t (*pause)(void *ctx, uint32_t node, uint32_t ms);
    /* grudge as JSON: [[nodes node 0 drops], [nodes node 1 drops], ...] */
    int32_t (*partition)(void *ctx, const char *grudge_json, uint32_t ms);
    int32_t (*clock_offset)(void *ctx, uint32_t node, int64_t offset_ms, uint32_t ms);
} ChaosHost;

/* "0.1.0" */
const char *chaos_native_contract(void);
/* JSON: {"name","version","author","description","kind":"fault",
 *        "capabilities":["signal"|"pause"|"partition"|"clock"...],
 *        "params":[{"name","kind":"integer|float|boolean|text","default","doc"}]} */
const char *chaos_native_describe(void);
/* cycle_json: {"cycle","seed","nodes","primary","writes","params":[[k,v]...]}.
 * Return NULL on success, or an error message chaos-host frees with
 * chaos_native_free. */
char *chaos_native_inject(const char *cycle_json, const ChaosHost *host);
void chaos_native_free(char *message);

#endif
