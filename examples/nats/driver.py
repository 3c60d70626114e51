#!/usr/bin/env python3
"""chaos-host driver process for NATS JetStream (nats-py, asyncio).

Protocol: one JSON request per line on stdin, one JSON reply per line on
stdout; logs go to stderr; exit 0 at EOF.  Ops: ready, setup, add, read.
Env: CHAOS_NODES (host:port,...), CHAOS_NAMESPACE, CHAOS_CYCLE,
CHAOS_PROCESS, CHAOS_TIMEOUT_MS (chaos-host's timeout; answered within 80%).
"""
import asyncio
import json
import os
import sys

import nats
from nats.errors import ConnectionClosedError, OutboundBufferLimitError
from nats.js.api import StorageType
from nats.js.errors import APIError, NoStreamResponseError

NODES = [n.strip() for n in os.environ["CHAOS_NODES"].split(",") if n.strip()]
NS = os.environ["CHAOS_NAMESPACE"]
# Answer before chaos-host gives up on this process (it retires it then).
TIMEOUT = int(os.environ.get("CHAOS_TIMEOUT_MS", "5000")) / 1000.0 * 0.8
STREAM = f"chaos-{NS}"  # stream names may not contain . * > / \ or spaces
SUBJECT = f"{NS}.add"  # the stream takes "<namespace>.>"
READ_WINDOW = 64  # message gets in flight at once during a read

STREAM_NOT_FOUND = 10059  # JSStreamNotFoundErr
NO_MESSAGE_FOUND = 10037  # JSNoMessageFoundErr (a deleted / absent sequence)

conns = {}  # node index -> live nats.aio.client.Client


def log(*a):
    print(f"driver[{os.environ.get('CHAOS_PROCESS', '?')}]:", *a, file=sys.stderr, flush=True)


async def _quiet(e):  # nats-py error callback: log only
    log("nats:", type(e).__name__, e)


async def conn(node):
    """The connection to this one node, opened lazily and reused."""
    nc = conns.get(node)
    if nc is not None and nc.is_connected:
        return nc
    drop(node)
    # allow_reconnect=False alone does NOT stop nats-py from retrying a refused
    # initial connect forever; max_reconnect_attempts=1 makes it give up after
    # two quick attempts (NoServersError). Discovered peers are never used.
    nc = await asyncio.wait_for(
        nats.connect(
            servers=[f"nats://{NODES[node]}"],
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.05,
            connect_timeout=min(TIMEOUT, 2.0),
            error_cb=_quiet,
        ),
        TIMEOUT,
    )
    conns[node] = nc
    return nc


def drop(node):
    """Forget a node's connection; close it in the background (close() can
    block on a paused server)."""
    nc = conns.pop(node, None)
    if nc is not None and not nc.is_closed:
        t = asyncio.ensure_future(asyncio.wait_for(nc.close(), 1.0))
        t.add_done_callback(lambda t: t.cancelled() or t.exception())


async def op_ready(req):
    nc = await conn(req["node"])
    jsm = nc.jsm(timeout=min(TIMEOUT, 1.0))  # short: unanswered means not ready
    # $JS.API.INFO is answered only once JetStream is on and a meta leader is
    # known (before that: no reply at all, i.e. a timeout).
    await jsm.account_info()
    # Once the stream exists, also wait for its own leader: right after a
    # restart the meta leader comes first and stream requests still time out.
    try:
        info = await jsm.stream_info(STREAM)
    except APIError as e:
        if e.err_code == STREAM_NOT_FOUND:
            return {"type": "ok"}  # before setup (or the stream is lost)
        raise
    if not (info.cluster and info.cluster.leader):
        return {"type": "fail", "error": "stream has no leader"}
    return {"type": "ok"}


NO_SUITABLE_PEERS = 10005  # JSClusterNoPeersErr: a peer has not joined yet


async def op_setup(req):
    nc = await conn(req.get("node", 0))
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        try:
            # Idempotent: re-adding the same config answers ok.
            await nc.jsm(timeout=TIMEOUT).add_stream(
                name=STREAM, subjects=[f"{NS}.>"], num_replicas=3, storage=StorageType.FILE
            )
            return {"type": "ok"}
        except APIError as e:
            # Right after start (slower across network namespaces) the meta
            # leader may not see every peer yet: ask again within the budget.
            if e.err_code != NO_SUITABLE_PEERS or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)


async def op_add(req):
    try:
        nc = await conn(req["node"])
    except Exception as e:  # never connected: nothing was sent
        return {"type": "fail", "error": f"connect: {type(e).__name__}: {e}"}
    try:
        await nc.jetstream(timeout=TIMEOUT).publish(SUBJECT, req["id"].encode(), stream=STREAM)
        return {"type": "ok"}
    except (NoStreamResponseError, ConnectionClosedError, OutboundBufferLimitError) as e:
        # no responders: no stream took it; closed/buffer: raised before sending
        return {"type": "fail", "error": f"{type(e).__name__}: {e}"}
    except APIError as e:
        # 400s are checks refused before storing; anything else may be half-done
        return {"type": "fail" if e.code == 400 else "info", "error": str(e)}
    # Anything else (timeout after sending, connection lost) propagates to
    # handle(), which answers "info": the message may have been stored.


async def op_read(req):
    nc = await conn(req["node"])
    jsm = nc.jsm(timeout=TIMEOUT)
    # Both STREAM.INFO and STREAM.MSG.GET (non-direct) are answered by the
    # stream leader only, so the read is not a possibly stale follower copy.
    try:
        st = (await jsm.stream_info(STREAM)).state
    except APIError as e:
        if e.err_code == STREAM_NOT_FOUND:
            return {"type": "ok", "ids": []}  # the stream is gone: that is the finding
        raise

    async def get(seq):
        try:
            return (await jsm.get_msg(STREAM, seq=seq)).data.decode()
        except APIError as e:
            if e.err_code == NO_MESSAGE_FOUND:
                return None  # deleted sequence (a gap)
            raise

    ids = []
    seqs = range(max(st.first_seq, 1), st.last_seq + 1)
    for i in range(0, len(seqs), READ_WINDOW):
        got = await asyncio.gather(*(get(s) for s in seqs[i : i + READ_WINDOW]))
        ids.extend(x for x in got if x is not None)
    return {"type": "ok", "ids": ids}


OPS = {"ready": op_ready, "setup": op_setup, "add": op_add, "read": op_read}


async def handle(req):
    op = OPS.get(req.get("op"))
    if op is None:
        return {"type": "fail", "error": f"unsupported op {req.get('op')!r}"}
    try:
        return await op(req)
    except Exception as e:
        if not isinstance(e, APIError):  # transport trouble: reconnect next time
            drop(req.get("node", 0))
        # an add that failed after sending may still have happened
        return {"type": "info" if req["op"] == "add" else "fail", "error": f"{type(e).__name__}: {e}"}


async def main():
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.buffer.readline)
        if not line:
            break  # EOF
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            reply = await handle(req)
        except Exception as e:  # unparsable request
            req, reply = {}, {"type": "fail", "error": f"bad request: {e}"}
        sys.stdout.write(json.dumps({"seq": req.get("seq"), **reply}) + "\n")
        sys.stdout.flush()
    for node in list(conns):
        nc = conns.pop(node)
        try:
            await asyncio.wait_for(nc.close(), 1.0)
        except Exception:
            pass


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
