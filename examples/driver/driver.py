#!/usr/bin/env python3
"""A chaos-host driver process for the reference store (quorum-kv), stdlib only.

One JSON operation per line on stdin, one JSON reply per line on stdout
(see docs/campaign.md, "A driver process"). The nodes' client addresses come in
CHAOS_NODES, this cycle's namespace in CHAOS_NAMESPACE."""
import json, os, sys, urllib.error, urllib.request

NODES = os.environ["CHAOS_NODES"].split(",")
NS = os.environ["CHAOS_NAMESPACE"]

def call(node, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{NODES[node]}{path}", data=data,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=4) as r:
        return r.status, json.loads(r.read() or b"null")

def handle(op):
    try:
        if op["op"] == "ready":
            call(op["node"], "/health")
            return {"type": "ok"}
        if op["op"] == "setup":
            return {"type": "ok"}  # quorum-kv needs nothing created
        if op["op"] == "add":
            call(op["node"], "/write", {"id": op["id"], "ns": NS, "value": "driver"})
            return {"type": "ok"}
        if op["op"] == "read":
            return {"type": "ok", "ids": call(op["node"], f"/ids?ns={NS}")[1]["ids"]}
        return {"type": "fail", "error": f"unsupported op {op['op']}"}
    except urllib.error.HTTPError as e:  # 503: quorum not met, nothing kept
        return {"type": "fail", "error": f"status {e.code}"}
    except ConnectionRefusedError as e:
        return {"type": "fail", "error": str(e)}
    except (urllib.error.URLError, OSError) as e:
        refused = isinstance(getattr(e, "reason", None), ConnectionRefusedError)
        return {"type": "fail" if refused else "info", "error": str(e)}

if __name__ == "__main__":
    for line in sys.stdin:  # one operation per line; EOF ends the driver
        op = json.loads(line)
        print(json.dumps({"seq": op["seq"], **handle(op)}), flush=True)
