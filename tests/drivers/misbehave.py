#!/usr/bin/env python3
"""A driver process that misbehaves on purpose, for the e2e tests: it runs
examples/driver/driver.py's protocol, except where MODE says otherwise.

MODE: exit_at_once | hang_adds | garbage_adds | wrong_seq | foreign_read |
      fail_setup | ok (behave)."""
import json, os, sys, time

MODE = os.environ.get("MODE", "ok")
if MODE == "exit_at_once":
    print("misbehave: exiting at once", file=sys.stderr)
    sys.exit(3)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "driver"))
import driver  # noqa: E402 (the reference driver's handler)

for line in sys.stdin:
    op = json.loads(line)
    if MODE == "hang_adds" and op["op"] == "add":
        time.sleep(3600)
    if MODE == "garbage_adds" and op["op"] == "add":
        print("this is not JSON", flush=True)
        continue
    if MODE == "wrong_seq" and op["op"] == "add":
        print(json.dumps({"seq": op["seq"] + 1000, "type": "ok"}), flush=True)
        continue
    if MODE == "fail_setup" and op["op"] == "setup":
        print(json.dumps({"seq": op["seq"], "type": "fail", "error": "cannot create the stream"}), flush=True)
        continue
    reply = driver.handle(op)
    if MODE == "foreign_read" and op["op"] == "read" and reply["type"] == "ok":
        reply["ids"].append("never-written-w1")
    print(json.dumps({"seq": op["seq"], **reply}), flush=True)
