"""The recorder: the visitor path's one door to the consent log.

``await recorder.record(event)`` returns the chained event once it is durable in the log *or* fsync'd to
the local spool, and raises :class:`~consent_gateway.errors.SpoolError` when neither could keep it (the
route then refuses a grant with 503; a refusal still takes effect). An event refused that way leaves no
trace: it is not kept for later, and the next event takes its place in the chain, so a grant answered 503
never shows up in the log as given.

Grouped commits: concurrent ``record`` calls queue up; one writer task chains them in order and hands the
whole batch to ``ConsentLog.append`` — one fsync for many events. A log that fails or answers slower than
``append_timeout_s`` sends the batch to the spool instead; while the spool holds anything, new batches go
there too (the log stays in order) and a replay task moves them to the log as soon as it answers.

Times: with a :class:`~consent_gateway.store.clock.LogClock`, an event stamped while this machine's clock
is off the reference gets the reference's time, and no event is stamped earlier than the previous one of
its chain (``store/clock.py`` gives the rule and why).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections import deque
from pathlib import Path

from consent_gateway import metrics
from consent_gateway.errors import SpoolError, StoreUnavailable
from consent_gateway.events import ChainHead, ConsentEvent, EventChain, LogKeys
from consent_gateway.store.base import ConsentLog, EventFilter, SendAppend
from consent_gateway.store.clock import LogClock, count_correction
from consent_gateway.store.spool import AsyncSpool

logger = logging.getLogger("consent_gateway.store.recorder")

_Pending = tuple[ConsentEvent, "asyncio.Future[ConsentEvent]"]
#: a chained batch on its way to the committer: its callers, its events, and its append prepared (or None)
_Chained = tuple[list[_Pending], list[ConsentEvent], SendAppend | None]


class EventRecorder:
    """Chains, batches and durably stores consent events; falls back to the spool.

    :param spool_path: the spool folder; this instance's spool is ``<instance_id>.jsonl`` in it, so
        several instances can share a data folder.
    :param instance_id: this writer's chain id; unique per running gateway process (two processes with
        the same id would fork the chain, which ``verify`` reports).
    :param max_batch: most events per ``append``.
    :param max_delay_s: how long the writer waits for more events before committing a batch that is not
        full (0: commit what is queued as soon as the previous commit returns — batches still grow under
        load, because events queue while a commit runs).
    :param append_timeout_s: a log slower than this is treated as down for that batch.
    :param log_keys: the log's HMAC keys; each event then carries a MAC of its hash (the keyed chain).
    :param replay_interval_s: how often replay retries while the log is down.
    :param clock: the reference time events are held to (None: the wall clock's stamps are kept, except
        that no event is stamped earlier than the previous one of its chain).
    """

    def __init__(
        self,
        log: ConsentLog,
        *,
        spool_path: str | os.PathLike[str],
        instance_id: str,
        max_batch: int = 2000,
        max_delay_s: float = 0.0,
        append_timeout_s: float = 2.0,
        replay_interval_s: float = 1.0,
        replay_batch: int = 2000,
        log_keys: LogKeys | None = None,
        clock: LogClock | None = None,
    ) -> None:
        if not instance_id:
            raise ValueError("EventRecorder needs a non-empty instance_id")
        self.log = log
        #: this writer's chain id: ``instance_id``, or ``<instance_id>.<ms>`` when it had to start afresh
        self.instance_id = instance_id
        self._base_instance_id = instance_id
        self.spool = AsyncSpool(Path(spool_path) / f"{_file_safe(instance_id)}.jsonl")
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.append_timeout_s = append_timeout_s
        self.replay_interval_s = replay_interval_s
        self.replay_batch = replay_batch
        self.log_keys = log_keys
        self._chain: EventChain | None = None
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._replay_kick = asyncio.Event()
        self._writer_task: asyncio.Task[None] | None = None
        self._replay_task: asyncio.Task[None] | None = None
        self._stopping = False
        #: a replay is moving spooled events into the log (a stop lets it finish)
        self._replaying = False
        #: the last append or replay succeeded
        self._log_ok = True
        #: spools of instances that are gone (their lock is free), replayed then deleted
        self._orphans: list[AsyncSpool] = []
        #: log appends that timed out but may still land (the spool has their events; replay is idempotent)
        self._late_appends: set[asyncio.Task[None]] = set()
        #: how long a refused batch waits for a late log append's answer before the chain moves on
        self.settle_timeout_s = max(10.0, 3 * append_timeout_s)
        #: the last event kept (log or spool): the chain continues from it
        self._durable = ChainHead(seq=0, hash="")
        self.clock = clock
        #: the newest stamp given: no later event is stamped earlier (each chain's times never go back)
        self._last_stamp_ms = 0

    @property
    def log_ok(self) -> bool:
        """False since the last append or replay into the log failed (events wait in the spool)."""
        return self._log_ok

    @property
    def spool_depth(self) -> int:
        return self.spool.depth + sum(o.depth for o in self._orphans)

    async def start(self) -> None:
        await self.spool.open()
        await self._adopt_orphans()
        head = await self._resume_head()  # may switch self.instance_id to a fresh chain id
        self._chain = EventChain(self.instance_id, head, keys=self.log_keys)
        self._durable = self._chain.head
        self._last_stamp_ms = await self._newest_stamp()
        metrics.register_gauge("spool_depth", lambda: float(self.spool_depth))
        self._stopping = False
        self._writer_task = asyncio.create_task(self._write_loop(), name="consent-gateway recorder writer")
        self._replay_task = asyncio.create_task(self._replay_loop(), name="consent-gateway spool replay")
        if self.spool_depth:
            self._replay_kick.set()

    async def _adopt_orphans(self) -> None:
        """Take over the spools of instances that are gone, so a restart under a new instance id (the
        default id names the process) still replays what the old process spooled. A spool whose lock
        is held belongs to a live instance and is left alone."""
        own = self.spool.spool.path
        for path in sorted(own.parent.glob("*.jsonl")):
            if path == own:
                continue
            orphan = AsyncSpool(path)
            try:
                await orphan.open()
            except (SpoolError, OSError):
                await orphan.close()
                continue
            if orphan.depth:
                logger.warning("adopting %d spooled consent events of a stopped instance (%s)", orphan.depth, path)
                self._orphans.append(orphan)
            else:
                await orphan.remove()

    async def _resume_head(self) -> ChainHead | None:
        """Where this instance's chain continues: the newest of its events in the spool or the log.

        Spooled events are always newer than the log's (while the spool holds anything, new events go
        there), so a spool head needs no log. With neither, guessing would risk forking the chain: the
        recorder starts a fresh chain id (``<instance>.<ms>``) instead, which never does.
        """
        self.instance_id = self._base_instance_id
        self._log_ok = True
        spooled = await self.spool.last_head(self.instance_id)
        try:
            heads = await asyncio.wait_for(self.log.chain_heads(), self.append_timeout_s)
        except (StoreUnavailable, TimeoutError, OSError) as exc:
            self._log_ok = False
            metrics.inc("store_errors_total", operation="chain_heads")
            if spooled is not None:
                logger.warning("consent log unavailable at start (%s): continuing the chain from the spool", exc)
                return spooled
            self.instance_id = f"{self.instance_id}.{int(time.time() * 1000)}"
            logger.warning(
                "consent log unavailable at start (%s): events go to the spool on a new chain %s",
                exc,
                self.instance_id,
            )
            return None
        candidates = [h for h in (spooled, heads.get(self.instance_id)) if h is not None]
        return max(candidates, key=lambda h: h.seq) if candidates else None

    async def _newest_stamp(self) -> int:
        """Where stamps start: the newest event in the log (0 while it does not answer), unless that is ahead
        of the reference time (an event stamped by a clock far ahead must not drag every later one along)."""
        if not self._log_ok:
            return 0
        try:
            page = await asyncio.wait_for(self.log.query(EventFilter(), limit=1), self.append_timeout_s)
        except (StoreUnavailable, TimeoutError, OSError):
            return 0
        if not page.events:
            return 0
        newest = page.events[0].timestamp_ms
        now_ms = self.clock.now_ms() if self.clock is not None else int(time.time() * 1000)
        tolerance = self.clock.tolerance_ms if self.clock is not None else 0
        return newest if newest <= now_ms + tolerance else 0

    def _stamp(self, event: ConsentEvent, correction_ms: int) -> int | None:
        """The time ``event`` must be chained with, held to the reference and to the chain's order (None:
        its own)."""
        stamp = max(event.timestamp_ms + correction_ms, self._last_stamp_ms)
        self._last_stamp_ms = stamp
        if stamp == event.timestamp_ms:
            return None
        if correction_ms:
            count_correction(1)
        return stamp

    async def stop(self) -> None:
        """Commit what is queued, try one last replay, and stop. Does not close the log."""
        self._stopping = True
        self._wakeup.set()
        if self._writer_task is not None:
            await self._writer_task
            self._writer_task = None
        if self._replay_task is not None:
            if self._replaying:
                # let the replay under way finish: an adopted spool replayed but not yet deleted would be
                # left behind (replayed again by the next start: harmless, but not clean)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._replay_task), self.append_timeout_s)
            self._replay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replay_task
            self._replay_task = None
        if self._late_appends:
            await asyncio.wait(self._late_appends, timeout=self.append_timeout_s)
            for task in self._late_appends:
                task.cancel()
        if self.spool_depth:
            with contextlib.suppress(StoreUnavailable, TimeoutError, OSError):
                await self._replay_once()
        for orphan in self._orphans:
            await orphan.close()
        self._orphans = []
        await self.spool.close()

    async def record(self, event: ConsentEvent) -> ConsentEvent:
        """Chain ``event`` and return it once durable; raises :class:`SpoolError` if nothing could keep it."""
        if self._writer_task is None or self._writer_task.done() or self._stopping:
            raise SpoolError("the event recorder is not running")
        future: asyncio.Future[ConsentEvent] = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        self._wakeup.set()
        return await future

    # -- writer -----------------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        """Chain batches in order and hand them to the committer, one batch ahead of it.

        Chaining (CPU on the loop) of the next batch overlaps the commit (fsync on a thread) of this one.
        """
        assert self._chain is not None
        handoff: asyncio.Queue[_Chained | None] = asyncio.Queue(maxsize=1)
        committer = asyncio.create_task(self._commit_loop(handoff), name="consent-gateway recorder commit")
        try:
            while True:
                if not self._queue:
                    if self._stopping:
                        break
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                if self.max_delay_s and len(self._queue) < self.max_batch and not self._stopping:
                    await asyncio.sleep(self.max_delay_s)
                take = min(len(self._queue), self.max_batch)
                batch: list[_Pending] = []
                chained: list[ConsentEvent] = []
                correction = self.clock.correction_ms() if self.clock is not None else 0
                for n in range(take):
                    if n and not n % _CHAIN_SLICE:
                        # let the committer hand the previous batch to the log now rather than after this
                        # whole batch: chaining a thousand events holds the loop for tens of milliseconds
                        # while the log would sit idle (the committer checks the whole batch's links, so a
                        # chain reset during this pause is caught)
                        await asyncio.sleep(0)
                    event, future = self._queue.popleft()
                    try:
                        chained.append(self._chain.append(event, timestamp_ms=self._stamp(event, correction)))
                    except (TypeError, ValueError) as exc:  # a field that cannot be serialised: this event only
                        logger.error("consent event %s cannot be chained: %s", event.event_id, exc)
                        if not future.done():
                            future.set_exception(exc)
                        continue
                    batch.append((event, future))
                if batch:
                    # the log's arguments built now, while it still writes the batch before
                    await handoff.put((batch, chained, self._prepare(chained)))
        except BaseException:
            # Cancelled (the server is going down without stop()): do not wait on a committer that may be
            # cancelled too; the callers still waiting are cancelled with their requests.
            committer.cancel()
            raise
        await handoff.put(None)
        await committer

    async def _commit_loop(self, handoff: asyncio.Queue[_Chained | None]) -> None:
        assert self._chain is not None
        #: the batch last kept, its callers told only once the next batch's append is under way (their
        #: wake-ups would otherwise run first and hold the log idle); told at once when nothing follows
        kept: tuple[list[_Pending], list[ConsentEvent]] | None = None
        try:
            while True:
                if kept is not None and handoff.empty():
                    _tell(*kept)
                    kept = None
                item = await handoff.get()
                if item is None:
                    break
                batch, chained, prepared = item
                durable = self._durable
                if not _follows(chained, self.instance_id, durable):
                    # Chained after a batch that was then refused: chain it again from what was kept.
                    chain = EventChain(self.instance_id, durable, keys=self.log_keys)
                    chained = [chain.append(event) for event in chained]  # keeps the times they were stamped with
                    self._chain.head = chain.head
                    prepared = None
                append = self._start_append(chained, prepared)
                if kept is not None:
                    _tell(*kept)
                    kept = None
                try:
                    await self._persist(chained, append)
                except Exception as exc:  # the loop must survive anything; callers learn of it
                    if not isinstance(exc, SpoolError):
                        logger.exception("consent event writer failed")
                        exc = SpoolError(f"event writer failed: {exc!r}")
                    # Nothing of this batch was kept: its seqs go to the next events, so no hole and no phantom.
                    self._chain.head = self._durable
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(SpoolError(str(exc)))
                else:
                    self._durable = ChainHead(seq=chained[-1].seq, hash=chained[-1].hash)
                    kept = (batch, chained)
        finally:
            if kept is not None:
                _tell(*kept)

    def _prepare(self, events: list[ConsentEvent]) -> SendAppend | None:
        """``events``' append with its arguments built, on a log that can (``base.SendAppend``)."""
        prepare = getattr(self.log, "prepare_append", None)
        if prepare is None:
            return None
        try:
            send: SendAppend = prepare(events)
        except Exception:  # built again by append() at commit time, which reports the failure
            logger.debug("preparing a consent log append failed", exc_info=True)
            return None
        return send

    def _start_append(self, events: list[ConsentEvent], prepared: SendAppend | None) -> asyncio.Task[None] | None:
        """The log append of ``events`` (``prepared`` for it, if any), started now (its first step runs before
        anything scheduled after it); None while the log is known to fail (the batch goes to the spool)."""
        if self.spool.depth == 0 or self._log_ok:
            return asyncio.ensure_future(prepared() if prepared is not None else self.log.append(events))
        return None

    async def _persist(self, events: list[ConsentEvent], append: asyncio.Task[None] | None) -> None:
        """Keep ``events`` in the log (``append``, from :meth:`_start_append`), or else in the spool;
        :class:`SpoolError` when neither kept them.

        Raising means *nothing* was kept: a log append that timed out is waited for before giving up, and
        if it cannot be told whether it landed, the chain moves to a fresh id (a landed batch then sits
        alone on the old chain rather than forking it).
        """
        late: asyncio.Task[None] | None = None
        # While the log is known to fail, go straight to the spool rather than wait for a timeout per
        # batch; once a replay succeeds, write directly again while the replay drains the rest.
        if append is not None:
            done, _ = await asyncio.wait({append}, timeout=self.append_timeout_s)
            if done and append.exception() is None:
                return
            self._log_ok = False
            metrics.inc("store_errors_total", operation="append")
            if done:
                reason = _describe(append.exception() or OSError())
            else:
                reason = "timed out"
                late = append
                self._late_appends.add(append)
                append.add_done_callback(self._late_appends.discard)
                append.add_done_callback(_consume_exception)
            logger.warning("consent log append failed (%s); spooling %d events", reason, len(events))
        try:
            await self.spool.append(events)
        except OSError as exc:
            metrics.inc("store_errors_total", operation="spool")
            if late is not None:
                await asyncio.wait({late}, timeout=self.settle_timeout_s)
                if late.done() and not late.cancelled() and late.exception() is None:
                    logger.warning("consent spool write failed (%s) but the log took the events late", exc)
                    return
                if not late.done():
                    self._start_fresh_chain("a log append whose outcome is unknown")
            logger.error("consent spool write failed: %s; %d events refused", exc, len(events))
            raise SpoolError(f"neither the consent log nor the spool could keep the event: {exc}") from exc
        metrics.inc("spooled_events_total", len(events))
        self._replay_kick.set()

    def _start_fresh_chain(self, why: str) -> None:
        assert self._chain is not None
        self.instance_id = f"{self._base_instance_id}.{int(time.time() * 1000)}"
        logger.error("after %s, consent events continue on a new chain %s", why, self.instance_id)
        self._chain.instance_id = self.instance_id
        self._chain.head = self._durable = ChainHead(seq=0, hash="")

    # -- replay -----------------------------------------------------------------------------------------

    async def _replay_loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._replay_kick.wait(), self.replay_interval_s)
            self._replay_kick.clear()
            if self._stopping or not self.spool_depth:
                continue
            try:
                self._replaying = True
                try:
                    await self._replay_once()
                finally:
                    self._replaying = False
            except (StoreUnavailable, TimeoutError, OSError) as exc:
                if self._stopping:
                    return
                metrics.inc("store_errors_total", operation="replay")
                logger.info("spool replay waits for the consent log: %s", _describe(exc))
                await asyncio.sleep(self.replay_interval_s)
                # A log that could not be opened at start (database locked, Redis down) is opened here
                # once it can be: opening is idempotent on both backends.
                with contextlib.suppress(StoreUnavailable, TimeoutError, OSError):
                    await asyncio.wait_for(self.log.open(), self.append_timeout_s)

    async def _replay_once(self) -> None:
        """Move everything the spools hold into the log, oldest first; adopted spools are then deleted."""
        while self._orphans:
            orphan = self._orphans[0]
            await self._replay_spool(orphan)
            await orphan.remove()
            self._orphans.pop(0)  # only once deleted: a stop in between still closes it
        await self._replay_spool(self.spool)

    async def _replay_spool(self, spool: AsyncSpool) -> None:
        while spool.depth:
            batch = await spool.read_pending(self.replay_batch)
            if batch.lines == 0:
                return
            if batch.events:
                try:
                    await asyncio.wait_for(self.log.append(batch.events), self.append_timeout_s)
                except BaseException:
                    self._log_ok = False
                    raise
                self._log_ok = True
            metrics.inc("replayed_events_total", len(batch.events))
            await spool.mark_replayed(batch)
            logger.info("replayed %d spooled consent events (%d left)", len(batch.events), spool.depth)


#: events chained between two yields to the event loop
_CHAIN_SLICE = 64


def _follows(chained: list[ConsentEvent], instance_id: str, head: ChainHead) -> bool:
    """Whether ``chained`` continues the chain ``instance_id`` from ``head``, link by link."""
    seq, prev = head.seq, head.hash
    for e in chained:
        if e.seq != seq + 1 or e.prev_hash != prev or e.instance_id != instance_id:
            return False
        seq, prev = e.seq, e.hash
    return True


def _tell(batch: list[_Pending], chained: list[ConsentEvent]) -> None:
    """Give each caller of a kept batch its chained event."""
    for (_, future), event in zip(batch, chained, strict=True):
        if not future.done():
            future.set_result(event)


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "instance"


def _consume_exception(task: asyncio.Task[None]) -> None:
    """A late append's failure was already handled (its events are in the spool): do not log it again."""
    if not task.cancelled():
        task.exception()


def _describe(exc: BaseException) -> str:
    return "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
