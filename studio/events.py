"""Job events, published once and streamed to many: an in-process pub/sub (`EventHub`) that the job store feeds
after each commit, and the Server-Sent Events stream that subscribes to it (`event_stream`).

A stream replays the stored events from the client's position (`since` / `Last-Event-ID`) once, then waits on its
subscription: no stream polls the store. It reads the store again only to fill a gap (a subscriber that fell
more than `queue_limit` events behind) and on each heartbeat, which also picks up events that another process
wrote into the same store. The number of open streams is capped (`TooManyStreams`, a 429 at the edge).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from studio.jobs import TERMINAL, JobEvent

SEQ_DIGITS = 18
MAX_SEQ = 10**SEQ_DIGITS - 1  # every 18-digit number: fits SQLite's int64 with `Last-Event-ID + 1`, and a
# pattern of the OpenAPI document (`^[0-9]{1,18}$`) says exactly which positions are accepted
PAGE = 1000  # stored events read at once
LAGGED = object()  # put in a subscription's queue instead of events it had no room for


class TooManyStreams(RuntimeError):
    """The cap on open event streams is reached."""


class BadPosition(ValueError):
    """A `since` or `Last-Event-ID` that is not an event number."""


def parse_position(text: str, name: str) -> int:
    """An event number from a query parameter or header: ASCII digits only, at most `MAX_SEQ`."""
    value = text.strip()
    if not (value and value.isascii() and value.isdigit()):
        raise BadPosition(f"{name} must be an event number (ASCII digits), got {text[:40]!r}")
    if len(value) > SEQ_DIGITS:
        raise BadPosition(f"{name} must be an event number of at most {MAX_SEQ}, got {value[:40]}")
    return int(value)


@dataclass(frozen=True)
class Published:
    """A committed event as the streams send it."""

    seq: int
    type: str
    text: str


class Subscription:
    """One stream's view of one job's live events (created by `EventHub.subscribe`, in the stream's event loop)."""

    def __init__(self, hub: "EventHub", job_id: str, queue_limit: int) -> None:
        self.hub = hub
        self.job_id = job_id
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.queue_limit = queue_limit
        self.closed = False

    def deliver(self, event: "Published") -> None:
        """Runs in the subscription's loop."""
        if self.queue.qsize() >= self.queue_limit:
            self.drain()
            self.queue.put_nowait(LAGGED)
        else:
            self.queue.put_nowait(event)

    async def next(self, timeout_s: float) -> "Published | object | None":
        """The next live event, `LAGGED`, or None when `timeout_s` passed without one."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout_s)
        except asyncio.TimeoutError:
            return None

    def drain(self) -> list:
        """Everything already queued, without waiting."""
        items = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub._remove(self)


class EventHub:
    """In-process publish/subscribe of job events.

    Args:
        max_streams: the most subscriptions open at once (`subscribe` raises `TooManyStreams` past it).
        queue_limit: the most undelivered events one subscription holds before it is told it lagged.
    """

    def __init__(self, *, max_streams: int = 256, queue_limit: int = 1000) -> None:
        if max_streams < 1:
            raise ValueError(f"max_streams must be >= 1, got {max_streams}")
        self.max_streams = max_streams
        self.queue_limit = queue_limit
        self._lock = threading.Lock()
        self._subs: dict[str, list[Subscription]] = {}
        self._count = 0

    @property
    def open_streams(self) -> int:
        return self._count

    def subscribe(self, job_id: str) -> Subscription:
        """A subscription to the job's events from now on; call it in the loop that will read it."""
        sub = Subscription(self, job_id, self.queue_limit)
        with self._lock:
            if self._count >= self.max_streams:
                raise TooManyStreams(f"{self._count} event streams are open, the limit is {self.max_streams}; "
                                     "retry later or poll GET /v1/jobs/{id}")
            self._subs.setdefault(job_id, []).append(sub)
            self._count += 1
        return sub

    def publish(self, events: list[JobEvent]) -> None:
        """Hand committed events to their subscribers (any thread; never blocks on a subscriber)."""
        with self._lock:
            targets = [(e, list(subs)) for e in events if (subs := self._subs.get(e.job_id))]
        for event, subs in targets:
            published = Published(event.seq, event.type, format_event(event))  # formatted once for all streams
            by_loop: dict[asyncio.AbstractEventLoop, list[Subscription]] = {}
            for sub in subs:
                by_loop.setdefault(sub.loop, []).append(sub)
            for loop, group in by_loop.items():  # one wake-up per event loop, not one per stream
                try:
                    loop.call_soon_threadsafe(_deliver_all, group, published)
                except RuntimeError:  # the loop has closed; its streams are gone
                    pass

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.job_id, [])
            if sub in subs:
                subs.remove(sub)
                self._count -= 1
            if not subs:
                self._subs.pop(sub.job_id, None)


def _deliver_all(subs: list[Subscription], published: Published) -> None:
    for sub in subs:
        if not sub.closed:
            sub.deliver(published)


def format_event(event: JobEvent) -> str:
    """One Server-Sent Event: `id` = seq, `event` = type, `data` = the event as JSON."""
    data = {"seq": event.seq, "time": event.time, "type": event.type, **event.payload}
    return f"id: {event.seq}\nevent: {event.type}\ndata: {json.dumps(data, default=str)}\n\n"


async def event_stream(sub: Subscription, read: Callable[[str, int, int], list[JobEvent]],
                       finished: Callable[[str], bool], since: int, *, heartbeat_s: float = 15.0,
                       batch_s: float = 0.05) -> AsyncIterator[str]:
    """The job's events from `since` as SSE text, ending after its terminal event; closes `sub` at the end.

    Args:
        sub: a subscription opened before the call (so nothing published meanwhile is missed).
        read: `read(job_id, since, limit)`, the first `limit` stored events with `seq >= since` (the store's
            `events`).
        finished: `finished(job_id)`, whether the job has ended (then its stored events are all there is).
        since: the first event number to send.
        heartbeat_s: how long the stream may stay silent; each heartbeat also re-reads the store.
        batch_s: live events arriving this close together are sent in one write (fewer wake-ups per stream).
    """
    next_seq = since
    try:
        while True:  # catch up from the store (at the start, after a lag, at each heartbeat)
            ended = await asyncio.to_thread(finished, sub.job_id)  # before the read: nothing is missed
            events = await asyncio.to_thread(read, sub.job_id, next_seq, PAGE)
            chunk, last = [], False
            for event in events:
                chunk.append(format_event(event))
                next_seq = event.seq + 1
                if event.type in TERMINAL:
                    last = True
                    break
            if chunk:
                yield "".join(chunk)
            if last or (ended and len(events) < PAGE):
                return  # the job's last event was sent (or `since` is past it)
            if len(events) == PAGE:
                continue  # there may be another page
            while True:  # live events, in order, without reading the store
                item = await sub.next(heartbeat_s)
                if item is None:
                    yield ": keep-alive\n\n"
                    break
                if batch_s:
                    await asyncio.sleep(batch_s)
                chunk, resync, done = [], False, False
                for got in [item, *sub.drain()]:
                    if not isinstance(got, Published) or got.seq > next_seq:
                        resync = True  # LAGGED, or a gap: the store has what was missed
                        break
                    if got.seq == next_seq:
                        chunk.append(got.text)
                        next_seq += 1
                        if got.type in TERMINAL:
                            done = True
                            break
                if chunk:
                    yield "".join(chunk)
                if done:
                    return
                if resync:
                    break
    finally:
        sub.close()
