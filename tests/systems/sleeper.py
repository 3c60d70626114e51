#!/usr/bin/env python3
"""threaded_kv with a ticker: a thread that sleeps 50 ms in a loop and
counts, so a clock mechanism that breaks sleeps shows. Under libfaketime
with DONT_FAKE_MONOTONIC (Debian's 0.9.10) `time.sleep` raises EINVAL and
the ticker dies; this node then refuses writes (500, "ticker stopped") and
the cycle fails. /time reports the wall clock (the campaign's clock probe),
the tick count and the monotonic clock.

  sleeper.py --node I --listen HOST:PORT --peers URL,URL --quorum 2
"""

import sys
import threading
import time

import threaded_kv as kv

TICK = 0.05
STATE = {"ticks": 0, "last": time.monotonic(), "error": None}


def ticker():
    try:
        while True:
            time.sleep(TICK)
            STATE["ticks"] += 1
            STATE["last"] = time.monotonic()
    except OSError as e:
        STATE["error"] = repr(e)


class Handler(kv.Handler):
    def ticking(self):
        return STATE["error"] is None and time.monotonic() - STATE["last"] < 1.0

    def do_GET(self):
        if self.path.startswith("/time"):
            return self.reply(200, {
                "unix_ms": int(time.time() * 1000),
                "ticks": STATE["ticks"],
                "mono_ms": int(time.monotonic() * 1000),
                "ticking": self.ticking(),
            })
        return super().do_GET()

    def do_POST(self):
        if self.path.startswith("/write") and not self.ticking():
            length = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(length)
            return self.reply(500, {"error": f"ticker stopped: {STATE['error']}"})
        return super().do_POST()


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--node", type=int, required=True)
    p.add_argument("--listen", required=True)
    p.add_argument("--peers", default="")
    p.add_argument("--quorum", type=int, default=2)
    p.add_argument("--data-dir", default="")
    kv.ARGS = p.parse_args()
    kv.ARGS.peers = [u.rstrip("/") for u in kv.ARGS.peers.split(",") if u]
    host, port = kv.ARGS.listen.rsplit(":", 1)
    threading.Thread(target=ticker, daemon=True).start()
    threading.Thread(target=kv.catch_up, daemon=True).start()
    kv.Server((host, int(port)), Handler).serve_forever()
