"""The local spool: where consent events wait, fsync'd, while the log is down or too slow.

One append-only file of framed records and a small offset file saying how far replay has gone. An event
is acknowledged only after its record is fsync'd, so a crash loses nothing that was acknowledged.

Record framing (a file rather than SQLite as the spool: the spool must work when the SQLite log on the
same disk is what fails, and one ``write`` + ``fsync`` per batch is the cheapest durable append)::

    b"\n" + b"%08x %08x " % (len(json), crc32(json)) + json + b"\n"

Every record *starts* with a newline, so a fragment left by a write that failed half-way (full disk,
crash) is always ended before the next record begins: it is skipped alone and never swallows the record
after it. The length and checksum reject a fragment, a bit flip or a glued line. A failed write is also cut
off at once (the file is truncated back to its size before the write). Lines without a frame are the
JSON lines of an older version, read as they are.

Replay may run twice over the same events (crash between append and offset update): the log ignores
event ids it already holds, so nothing is doubled. When replay has caught up the file is emptied.

The file holds personal fields (already minimised per ``[privacy] ip_mode``): it is created mode 0600.

Every method here blocks; :class:`AsyncSpool` runs them on one dedicated thread, which also serialises
appends and replay bookkeeping.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson

from consent_gateway.errors import SpoolError
from consent_gateway.events import ChainHead, ConsentEvent, event_from_dict, event_to_dict

logger = logging.getLogger("consent_gateway.store.spool")

_loads = orjson.loads


_FRAME = re.compile(rb"([0-9a-f]{8}) ([0-9a-f]{8}) ")
_FRAME_LENGTH = 18


def frame(value: Any) -> bytes:
    """One spool record: leading newline, length and CRC-32 of the JSON, the JSON, trailing newline."""
    data = orjson.dumps(value)
    return b"\n%08x %08x " % (len(data), zlib.crc32(data)) + data + b"\n"


def unframe(line: bytes) -> bytes:
    """The JSON of one record (without its newlines); raises ``ValueError`` for a torn or damaged one."""
    if line.startswith(b"{"):
        return line  # an older version's plain JSON line
    match = _FRAME.match(line)
    if match is None:
        raise ValueError("no record frame (fragment of a failed write?)")
    data = line[_FRAME_LENGTH:]
    if len(data) != int(match.group(1), 16):
        raise ValueError(f"record of {len(data)} bytes, its frame says {int(match.group(1), 16)}")
    if zlib.crc32(data) != int(match.group(2), 16):
        raise ValueError("record checksum mismatch")
    return data


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SpoolBatch:
    events: list[ConsentEvent]
    #: byte offset just after the last event of the batch (pass to ``mark_replayed``)
    end_offset: int
    #: lines consumed, unreadable ones included
    lines: int


class Spool:
    """Blocking spool file. Not thread-safe: use one thread (see :class:`AsyncSpool`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.offset_path = self.path.with_name(self.path.name + ".offset")
        self.depth = 0
        self._fd: int | None = None
        self._offset = 0

    def open(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for _ in range(3):
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            if not stat.S_ISREG(os.fstat(self._fd).st_mode):
                self.close()
                raise SpoolError(f"spool {self.path} is not a regular file")
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                self.close()
                raise SpoolError(
                    f"spool {self.path} is in use by another process: give each gateway instance its own instance id"
                ) from exc
            # Another instance may have adopted and deleted this file between our open and our lock:
            # then we hold a lock on a deleted file, and start again on the path.
            try:
                if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            self.close()
        else:
            raise SpoolError(f"spool {self.path} keeps disappearing")
        if created:
            _fsync_dir(self.path.parent)
        size = self._cut_torn_tail()
        self._offset = self._read_offset()
        if self._offset > size:
            # The file was emptied after the offset was written: replay everything (idempotent).
            self._offset = 0
        self.depth = sum(1 for _ in self._lines(self._offset, None))
        if self.depth:
            logger.warning("spool %s holds %d consent events not yet in the log; replaying", self.path, self.depth)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def remove(self) -> None:
        """Delete an empty spool's files (while still holding its lock), then close it."""
        self.offset_path.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)
        self.close()

    def append(self, events: Sequence[ConsentEvent]) -> None:
        """Write and fsync; returns only once the events would survive a crash."""
        if self._fd is None:
            raise OSError(f"spool {self.path} is not open")
        data = b"".join(frame(event_to_dict(e)) for e in events)
        size = os.fstat(self._fd).st_size
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError:
            # Full disk or I/O error: none of these events is acknowledged, so none may stay behind
            # (a fragment left here would be replayed as a consent nobody was told was kept).
            try:
                os.ftruncate(self._fd, size)
                os.fsync(self._fd)
            except OSError as cut_error:  # the frame still isolates the fragment at replay
                logger.error("spool %s: could not cut a failed write back off: %s", self.path, cut_error)
            raise
        self.depth += len(events)

    def read_pending(self, max_events: int) -> SpoolBatch:
        events: list[ConsentEvent] = []
        end = self._offset
        lines = 0
        for line_end, line in self._lines(self._offset, max_events):
            end = line_end
            lines += 1
            try:
                events.append(event_from_dict(_loads(unframe(line))))
            except (ValueError, TypeError) as exc:
                logger.error("spool %s: skipping unreadable line ending at byte %d: %s", self.path, line_end, exc)
        return SpoolBatch(events=events, end_offset=end, lines=lines)

    def mark_replayed(self, batch: SpoolBatch) -> None:
        self._offset = batch.end_offset
        self.depth = max(0, self.depth - batch.lines)
        if self._offset >= os.fstat(self._require_fd()).st_size:
            # Caught up: reset the offset first, then empty the file. A crash in between replays the
            # file again, which is harmless; the other order could skip events appended later.
            self._write_offset(0)
            os.ftruncate(self._require_fd(), 0)
            os.fsync(self._require_fd())
            self._offset = 0
            self.depth = 0
        else:
            self._write_offset(self._offset)

    def last_head(self, instance_id: str) -> ChainHead | None:
        """The newest event of ``instance_id`` still waiting here (the chain continues after it)."""
        head: ChainHead | None = None
        for _, line in self._lines(self._offset, None):
            try:
                data = _loads(unframe(line))
            except ValueError:
                continue
            if data.get("instance_id") == instance_id and (head is None or data["seq"] > head.seq):
                head = ChainHead(seq=int(data["seq"]), hash=str(data["hash"]))
        return head

    # -- internals --------------------------------------------------------------------------------------

    def _require_fd(self) -> int:
        if self._fd is None:
            raise OSError(f"spool {self.path} is not open")
        return self._fd

    def _cut_torn_tail(self) -> int:
        fd = self._require_fd()
        size = os.fstat(fd).st_size
        if size == 0:
            return 0
        with open(self.path, "rb") as f:
            f.seek(max(0, size - 1))
            if f.read(1) == b"\n":
                return size
            f.seek(0)
            data = f.read()
        keep = data.rfind(b"\n") + 1
        logger.warning("spool %s: cutting a torn last line (%d bytes, never acknowledged)", self.path, size - keep)
        os.ftruncate(fd, keep)
        os.fsync(fd)
        return keep

    def _lines(self, start: int, max_lines: int | None) -> Iterator[tuple[int, bytes]]:
        """Yield ``(end_offset, line)`` from byte ``start``, at most ``max_lines``."""
        with open(self.path, "rb") as f:
            f.seek(start)
            position = start
            count = 0
            for raw in f:
                if not raw.endswith(b"\n"):
                    return
                position += len(raw)
                if raw == b"\n":
                    continue  # the newline that opens each record
                yield position, raw[:-1]
                count += 1
                if max_lines is not None and count >= max_lines:
                    return

    def _read_offset(self) -> int:
        try:
            return int(self.offset_path.read_text().strip() or 0)
        except FileNotFoundError:
            return 0
        except ValueError:
            logger.error("spool offset file %s is unreadable; replaying the whole spool", self.offset_path)
            return 0

    def _write_offset(self, offset: int) -> None:
        tmp = self.offset_path.with_name(self.offset_path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(str(offset))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.offset_path)


class AsyncSpool:
    """The spool driven from the event loop: every call runs on one dedicated thread, in order."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.spool = Spool(path)
        self._pool: ThreadPoolExecutor | None = None

    @property
    def depth(self) -> int:
        return self.spool.depth

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            raise OSError("spool is not open")
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cg-spool")
        await self._call(self.spool.open)

    async def close(self) -> None:
        if self._pool is not None:
            await self._call(self.spool.close)
            self._pool.shutdown(wait=True)
            self._pool = None

    async def remove(self) -> None:
        if self._pool is not None:
            await self._call(self.spool.remove)
            self._pool.shutdown(wait=True)
            self._pool = None

    async def append(self, events: Sequence[ConsentEvent]) -> None:
        await self._call(self.spool.append, events)

    async def read_pending(self, max_events: int) -> SpoolBatch:
        return await self._call(self.spool.read_pending, max_events)

    async def mark_replayed(self, batch: SpoolBatch) -> None:
        await self._call(self.spool.mark_replayed, batch)

    async def last_head(self, instance_id: str) -> ChainHead | None:
        return await self._call(self.spool.last_head, instance_id)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
