"""A gateway-like writer process for the several-instances tests: one EventRecorder, many visitors.

Every acknowledged event id is appended to the ``--acked`` file at once, so a test that kills this
process still knows what it acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from consent_gateway.store import open_log
from consent_gateway.store.recorder import EventRecorder
from tests.store.conftest import make_event


async def main(args: argparse.Namespace) -> None:
    options = {"socket_timeout_s": 0.5, "connect_timeout_s": 0.5} if args.url.startswith("redis") else {}
    log = open_log(args.url, **options)
    try:
        await log.open()
    except Exception as exc:  # a writer starting while Redis is down still records, to its spool
        print(f"log unavailable at start: {exc}", file=sys.stderr)
    recorder = EventRecorder(
        log,
        spool_path=args.spool,
        instance_id=args.instance,
        append_timeout_s=0.5,
        replay_interval_s=0.1,
        replay_batch=args.replay_batch,
    )
    await recorder.start()
    acked = os.open(args.acked, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    per_visitor = args.count // args.visitors if args.visitors else 0

    async def visitor(k: int) -> None:
        for i in range(per_visitor):
            event = await recorder.record(make_event(k * 10_000 + i))
            os.write(acked, f"{event.event_id}\n".encode())
            await asyncio.sleep(args.pause)

    await asyncio.gather(*(visitor(k) for k in range(args.visitors)))
    deadline = time.monotonic() + 30
    while recorder.spool_depth and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await recorder.stop()
    await log.close()
    os.close(acked)
    print(f"done spool_depth={recorder.spool_depth}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--instance", required=True)
    parser.add_argument("--spool", required=True)
    parser.add_argument("--acked", required=True)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--visitors", type=int, default=20)
    parser.add_argument("--pause", type=float, default=0.002)
    parser.add_argument("--replay-batch", type=int, default=2000)
    asyncio.run(main(parser.parse_args()))
