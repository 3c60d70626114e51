#!/usr/bin/env python3
"""A 3-node quorum store the way a small team writes one: Python's
ThreadingHTTPServer (listen backlog 5), a new urllib connection per peer
request, and a pull-based catch-up thread. Unknown to chaos-host's own
reference system, it is the e2e suite's check that every network mode
carries a system with a small accept queue without stalling it.

  threaded_kv.py --node I --listen HOST:PORT --peers URL,URL --quorum 2
"""

import argparse
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LOCK = threading.Lock()
DATA = {}  # namespace -> set of ids


def add(ns, ids):
    with LOCK:
        DATA.setdefault(ns, set()).update(ids)


def call(url, body=None, timeout=1.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def reply(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/health":
            return self.reply(200, {"ok": True})
        if url.path == "/time":
            return self.reply(200, {"unix_ms": int(time.time() * 1000)})
        if url.path == "/ids":
            ns = parse_qs(url.query).get("ns", [""])[0]
            with LOCK:
                ids = sorted(DATA.get(ns, ()))
            return self.reply(200, {"ids": ids})
        if url.path == "/dump":
            with LOCK:
                dump = {ns: sorted(ids) for ns, ids in DATA.items()}
            return self.reply(200, dump)
        self.reply(404, {"error": "no such path"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        url = urlparse(self.path)
        if url.path == "/replicate":
            add(body["ns"], [body["id"]])
            return self.reply(200, {"ok": True})
        if url.path != "/write":
            return self.reply(404, {"error": "no such path"})
        add(body["ns"], [body["id"]])
        held = 1
        for peer in ARGS.peers:
            try:
                status, _ = call(peer + "/replicate", body)
                held += status == 200
            except OSError:
                pass
        if held >= ARGS.quorum:
            return self.reply(201, {"id": body["id"]})
        self.reply(503, {"error": "quorum not met", "held": held})


def catch_up():
    while True:
        for peer in ARGS.peers:
            try:
                _, raw = call(peer + "/dump")
                for ns, ids in json.loads(raw).items():
                    add(ns, ids)
            except (OSError, ValueError):
                pass
        time.sleep(0.1)


class Server(ThreadingHTTPServer):
    request_queue_size = 5  # socketserver's default, said out loud
    daemon_threads = True


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--node", type=int, required=True)
    p.add_argument("--listen", required=True)
    p.add_argument("--peers", default="")
    p.add_argument("--quorum", type=int, default=2)
    # Held in memory: the data dir is accepted so the harness can give a
    # fresh one per cycle.
    p.add_argument("--data-dir", default="")
    ARGS = p.parse_args()
    ARGS.peers = [u.rstrip("/") for u in ARGS.peers.split(",") if u]
    host, port = ARGS.listen.rsplit(":", 1)
    threading.Thread(target=catch_up, daemon=True).start()
    Server((host, int(port)), Handler).serve_forever()
