"""Analysis processes: `analyse` (crawler/analyse.py) in worker processes while the crawler downloads, as a
Scrapy extension (`AnalysisProcesses`; not configured with NEWSWATCH_ANALYSIS_PROCESSES=0, when the
spider analyses in its own process).

Why another process: Scrapy runs in one thread, and a pass is CPU-bound on the real work of each page
(parsing, OpenCC conversion, fingerprinting), about as much again as Scrapy's own cost per page. A worker
process puts that work on a second core while the crawler keeps downloading.

Why not concurrent.futures.ProcessPoolExecutor: the crawler's thread is the bottleneck of a pass, and the
pool costs it per page a wake-up write to its manager thread, two helper threads taking the GIL to move
each page and result, and a cross-thread hand-back to the event loop (5 % of the crawler's thread in a
profile). Here each worker has a pipe each way; the event loop writes pages to one and is woken by the
results on the other.

Reads the Scrapy settings NEWSWATCH_ANALYSIS_PROCESSES, NEWSWATCH_ANALYSIS_TIMEOUT and NEWSWATCH_TOPICS.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import os
import pickle
import signal
import struct
import time
from collections import deque

from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler.analyse import Analysis, analyse, warm
from newswatch.errors import AnalysisProcessDied, AnalysisTimedOut
from newswatch.lifetime import die_with_parent

log = logging.getLogger(__name__)

READY = -1  # the sequence number of a worker's first message: warmed up, pages from now on are timed


def _serve(pages, replies, topics: str | None, parent: int) -> None:
    """An analysis process: read (seq, body, url, content type) from `pages`, answer (seq, ok, Analysis or exception)
    on `replies`, until EOF."""
    # A crawl killed outright (by the daemon's run timeout, or the kernel when the daemon dies: see
    # scheduler/child.py) runs no clean-up; its worker would wait on the pipe for ever.
    if not die_with_parent(parent, signal.SIGKILL):
        return
    # Ctrl-C, and the SIGTERM that `run` sends a revisit's whole process group, are the crawler's to handle:
    # it stops gracefully and closes our pipe (EOF). Dying on them would be reported as a crash mid-stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    warm(topics)
    replies.send_bytes(pickle.dumps((READY, True, None)))
    while True:
        try:
            seq, body, url, content_type = pickle.loads(pages.recv_bytes())
        except EOFError:
            return
        try:
            reply = (seq, True, analyse(body, url, topics, content_type))
        except Exception as exc:  # the crawler counts and logs it against the page
            reply = (seq, False, exc)
        try:
            data = pickle.dumps(reply, pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an exception that does not pickle
            data = pickle.dumps((seq, False, RuntimeError(f"{type(reply[2]).__name__}: {reply[2]} ({exc})")))
        replies.send_bytes(data)


class _Worker:
    """One analysis process and its two pipes. Pages go out on one, answers come back on the other, and
    the crawler writes pages without blocking: with one pipe written by both sides, a page and an answer
    each larger than the socket buffer (megabyte pages) left each side blocked in its write, for ever."""

    def __init__(self, topics: str | None):
        # spawn, not fork: the crawling process runs threads (Twisted, redis-py) that fork would copy
        ctx = multiprocessing.get_context("spawn")
        page_end, self.pages = ctx.Pipe(duplex=False)
        self.replies, reply_end = ctx.Pipe(duplex=False)
        self.process = ctx.Process(target=_serve, args=(page_end, reply_end, topics, os.getpid()), daemon=True,
                                   name="newswatch-analysis")
        self.process.start()
        page_end.close()
        reply_end.close()
        os.set_blocking(self.pages.fileno(), False)
        self.outbox = bytearray()  # framed pages not yet taken by the pipe
        # seq -> (future, (body, url, content type)), in the order sent: the worker answers in that order, so the first
        # entry is the page it is working on.
        self.in_flight: dict[int, tuple[asyncio.Future, tuple]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.ready = False
        self.clock: asyncio.TimerHandle | None = None  # the time limit of the page being worked on

    def write(self) -> bool:
        """Write what the pipe takes now; True when the outbox is empty."""
        while self.outbox:
            try:
                written = os.write(self.pages.fileno(), self.outbox)
            except BlockingIOError:
                return False
            del self.outbox[:written]
        return True


def _framed(data: bytes) -> bytes:
    """`data` as multiprocessing's Connection.recv_bytes expects it: a length header, then the bytes."""
    if len(data) > 0x7FFFFFFF:
        return struct.pack("!i", -1) + struct.pack("!Q", len(data)) + data
    return struct.pack("!i", len(data)) + data


class AnalysisPool:
    """Runs `analyse` in `processes` worker processes.

    The workers start with the spider (`start`), so that their start-up (an interpreter, the extraction
    libraries, the OpenCC tables: most of a second) overlaps the crawler's own start and its first list
    page, instead of delaying the first new article; at the end of the pass they are killed, not waited
    for, so an idle revisit does not wait for a start-up it did not need. Each worker holds at most
    IN_FLIGHT pages at a time, so a write to its pipe never waits for it; the rest wait here, in arrival
    order. A worker that dies fails the pages it held (AnalysisProcessDied) and is
    replaced for the pages after them, up to MAX_RESTARTS times in a pass.

    Each page has `timeout` seconds of its worker's time, counted from when the worker turns to it (not
    from when it was queued). A page past its limit fails with AnalysisTimedOut; its worker is killed
    (a CPU-bound call cannot be interrupted any other way) and replaced, and the pages it held behind that
    page go back to the front of the queue: they are retried, not failed. Inline (0 processes) there is
    no limit: the linear-time extraction is the defence there.

    Answers come back in the order pages were sent to a worker, as its `in_flight` holds them."""

    IN_FLIGHT = 4
    MAX_RESTARTS = 3

    def __init__(self, processes: int, topics: str | None, timeout: float = 30.0):
        self.processes = processes
        self.topics = topics
        self.timeout = timeout
        self._workers: list[_Worker] = []
        self._waiting: deque[tuple[int, tuple, asyncio.Future]] = deque()
        self._seq = itertools.count()
        self.restarts = 0
        self.timeouts = 0
        self._started = False

    def start(self) -> None:
        if self.processes and not self._started:
            self._started = True
            self._workers = [_Worker(self.topics) for _ in range(self.processes)]

    async def __call__(self, body: bytes, url: str, content_type: str | None = None) -> Analysis:
        self.start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting.append((next(self._seq), (body, url, content_type), future))
        self._dispatch(loop)
        return await future

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._workers:  # every worker died and the restarts are spent
            while self._waiting:
                future = self._waiting.popleft()[2]
                if not future.done():
                    future.set_exception(AnalysisProcessDied("no analysis process left in this pass"))
            return
        while self._waiting:
            worker = min(self._workers, key=lambda w: len(w.in_flight))
            if len(worker.in_flight) >= self.IN_FLIGHT:
                return
            seq, page, future = self._waiting.popleft()
            if future.done():  # cancelled while it waited
                continue
            if worker.loop is None:
                worker.loop = loop
                loop.add_reader(worker.replies.fileno(), self._readable, worker)
            worker.in_flight[seq] = (future, page)
            if len(worker.in_flight) == 1:
                self._start_clock(worker)
            pending = bool(worker.outbox)
            worker.outbox += _framed(pickle.dumps((seq, *page), pickle.HIGHEST_PROTOCOL))
            if not pending:
                self._writable(worker)
            if worker not in self._workers:
                return

    def _writable(self, worker: _Worker) -> None:
        try:
            done = worker.write()
        except OSError:  # the pipe broke: the worker is gone
            self._died(worker)
            return
        if done:
            worker.loop.remove_writer(worker.pages.fileno())
        else:
            worker.loop.add_writer(worker.pages.fileno(), self._writable, worker)

    def _start_clock(self, worker: _Worker) -> None:
        """Time the page the worker is now working on (the first it holds), once it is warmed up."""
        if worker.clock is not None:
            worker.clock.cancel()
            worker.clock = None
        if worker.ready and worker.in_flight and worker.loop is not None:
            seq = next(iter(worker.in_flight))
            worker.clock = worker.loop.call_later(self.timeout, self._expired, worker, seq, time.monotonic())

    def _readable(self, worker: _Worker) -> None:
        # One answer per call: the loop's selector is level-triggered and calls again while more are
        # waiting (Connection.poll would build a selector of its own on every call).
        try:
            seq, ok, value = pickle.loads(worker.replies.recv_bytes())
        except (EOFError, OSError):
            self._died(worker)
            return
        if seq == READY:
            worker.ready = True
        else:
            future = worker.in_flight.pop(seq)[0]
            if not future.done():
                future.set_result(value) if ok else future.set_exception(value)
        self._start_clock(worker)
        self._dispatch(worker.loop)

    def _expired(self, worker: _Worker, seq: int, since: float) -> None:
        if worker not in self._workers or next(iter(worker.in_flight), None) != seq:
            return  # answered meanwhile
        future, (_, url, _) = worker.in_flight.pop(seq)
        loop = worker.loop
        self.timeouts += 1
        log.warning("analysis of %s took longer than %gs (NEWSWATCH_ANALYSIS_TIMEOUT): abandoned, the "
                    "analysis process replaced, the %d page(s) it held behind it retried", url,
                    time.monotonic() - since, len(worker.in_flight))
        # The pages it held behind this one go back first in line, in their order.
        for other, (waiting, page) in reversed(list(worker.in_flight.items())):
            self._waiting.appendleft((other, page, waiting))
        worker.in_flight.clear()
        self._close(worker)
        self._workers.remove(worker)
        self._workers.append(_Worker(self.topics))
        if not future.done():
            future.set_exception(AnalysisTimedOut(f"analysis took longer than {self.timeout:g}s"))
        if loop is not None:
            loop.call_soon(self._dispatch, loop)

    def _died(self, worker: _Worker) -> None:
        loop = worker.loop
        self._close(worker)
        self._workers.remove(worker)
        code = worker.process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        for future, _ in worker.in_flight.values():
            if not future.done():
                future.set_exception(AnalysisProcessDied(f"the analysis process died ({how})"))
        worker.in_flight.clear()
        if self.restarts < self.MAX_RESTARTS:
            self.restarts += 1
            log.error("the analysis process died (%s); starting a new one (%d/%d this pass)", how,
                      self.restarts, self.MAX_RESTARTS)
            self._workers.append(_Worker(self.topics))
        else:
            log.error("the analysis process died (%s); no restarts left in this pass", how)
        if loop is not None:
            loop.call_soon(self._dispatch, loop)

    @staticmethod
    def _close(worker: _Worker) -> None:
        if worker.clock is not None:
            worker.clock.cancel()
            worker.clock = None
        if worker.loop is not None:
            worker.loop.remove_reader(worker.replies.fileno())
            worker.loop.remove_writer(worker.pages.fileno())
            worker.loop = None
        worker.replies.close()
        worker.pages.close()
        if worker.process.is_alive():
            # It keeps nothing: an answer not yet read is for a page the pass no longer waits for. Killed,
            # because after an idle revisit it may still be starting up and would read EOF only then.
            worker.process.kill()
        worker.process.join(5)

    def close(self) -> None:
        for worker in self._workers:
            self._close(worker)
            for future, _ in worker.in_flight.values():
                future.cancel()
        self._workers = []
        for _, _, future in self._waiting:
            future.cancel()
        self._waiting.clear()


class AnalysisProcesses:
    """The crawl's analysis processes (a Scrapy extension): started when the spider opens, so that their
    start-up overlaps the first list page, and killed when it closes. The spider awaits `analyse`."""

    def __init__(self, pool: AnalysisPool):
        self.pool = pool

    @classmethod
    def from_crawler(cls, crawler):
        processes = crawler.settings.getint("NEWSWATCH_ANALYSIS_PROCESSES", 0)
        if processes < 1:
            raise NotConfigured("NEWSWATCH_ANALYSIS_PROCESSES=0: pages are analysed in the crawler itself")
        ext = cls(AnalysisPool(processes, crawler.settings.get("NEWSWATCH_TOPICS"),
                               crawler.settings.getfloat("NEWSWATCH_ANALYSIS_TIMEOUT", 30.0)))
        crawler.signals.connect(ext.pool.start, signal=signals.spider_opened)
        crawler.signals.connect(ext.pool.close, signal=signals.spider_closed)
        return ext

    async def analyse(self, body: bytes, url: str, content_type: str | None = None) -> Analysis:
        return await self.pool(body, url, content_type)
