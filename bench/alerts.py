"""Alert delivery benchmark: deliveries per second and XADD→receipt latency, against a local receiver.

    python bench/alerts.py [--items 5000] [--concurrency 8] [--latency-items 500] [--rounds 5] [--redis-url URL]

1. Throughput, in rounds: the anchor (the same signed requests POSTed by the same number of threads over
   kept-alive connections with no Redis and no worker, i.e. the ceiling this receiver and machine allow),
   then N items queued at once for the running worker, timed until the receiver has every webhook-id.
   The named anchor (issue #14: "bare POSTs from the same number of threads") is Python's http.client, as
   every client before this transport was; a second anchor makes the same POSTs through the worker's own
   transport (alerts/transport.py), so each round gives the ratio against both. The
   items are queued by another process, as the crawler does (queueing 5,000 items from the worker's own
   process took its GIL for about 70 ms of each round). The ratio is taken per round (side by side) and
   reported as the median of the rounds.
2. Latency: with the worker idle and waiting, XADD items one at a time (every 5 ms) and measure XADD →
   receipt, p50 and p99.

`--profile N` instead runs the worker once on a backlog of N items, then the anchor on N requests, and
reports where the worker's time goes: CPU per item of each of its threads, Redis commands per delivered
item (INFO commandstats, so give it a Redis of its own: `--redis-url redis://127.0.0.1:6391/0`) and context
switches per item. Under `py-spy record --gil -r 300 -f raw -o gil.txt -- python bench/alerts.py --profile
30000` the same run shows which code holds the GIL.

The receiver is a ThreadingHTTPServer in a separate process (so it does not share the worker's GIL) that
records (webhook-id, receipt time) per request. The worker's Redis client is the one `newswatch alerts`
uses (`newswatch.connection.client_from_url`). Results go to bench/results/alerts.txt.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import platform
import resource
import socket
import statistics
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
from receiver import RecordingReceiver  # noqa: E402
from redis.utils import HIREDIS_AVAILABLE  # noqa: E402
from report import write_report  # noqa: E402

from alerts.delivery import Sender  # noqa: E402
from alerts.formats import Request, StandardFormat  # noqa: E402
from alerts.worker import AlertWorker  # noqa: E402
from crawler.stream import entry_fields as stream_entry  # noqa: E402 - items queued as the crawler queues them
from newswatch.config import Endpoint, Settings  # noqa: E402
from newswatch.connection import client_from_url  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"bench-secret-0123456789abcdef!!").decode()


def _receiver(port: int, ready, conn) -> None:
    """The receiver in its own process (so it does not share the worker's GIL), driven through `conn`."""
    server = RecordingReceiver(port).start()
    ready.set()
    while True:
        command = conn.recv()
        if command == "count":
            with server.lock:
                conn.send(len(server.received))
        elif command == "dump":
            with server.lock:
                conn.send(list(server.received))
                server.received.clear()
        elif command == "stop":
            server.stop()
            return


class RemoteReceiver:
    def __init__(self):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._conn, child = multiprocessing.Pipe()
        ready = multiprocessing.Event()
        self._proc = multiprocessing.Process(target=_receiver, args=(self.port, ready, child), daemon=True)
        self._proc.start()
        ready.wait(10)

    def count(self) -> int:
        self._conn.send("count")
        return self._conn.recv()

    def dump(self) -> list[tuple[str, float]]:
        self._conn.send("dump")
        return self._conn.recv()

    def wait(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() >= n:
                return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        self._conn.send("stop")
        self._proc.join(5)


def item(n: int) -> dict:
    return {"id": f"bench-{n}", "url": f"https://daydaynews.cc/zh-hant/international/{n}.html",
            "source": "daydaynews", "title": f"美俄會談 第{n}輪", "published_at": "2025-03-01T10:00:00+08:00",
            "category": "國際", "summary": "美國與俄羅斯代表在利雅得舉行會談。" * 3,
            "body": "美國與俄羅斯代表在利雅得舉行會談。\n雙方同意繼續對話。" * 20, "lang": "zh-Hant",
            "topic": {"name": "us-russia-talks", "score": 3.0, "matched": ["美俄", "會談"]},
            "simhash": "0123456789abcdef", "fetched_at": "2025-03-01T02:00:05+00:00", "views": 10, "images": []}


class BareConnection(http.client.HTTPConnection):
    """http.client's keep-alive connection, with the two settings any fast client has and the worker's
    Sender had while it was built on http.client: TCP_NODELAY, and the head and body in one send (in two,
    Nagle holds the body for the receiver's delayed ACK, ~40 ms a request on loopback)."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send_output(self, message_body=None, encode_chunked=False):
        self._buffer.extend((b"", b""))
        message = b"\r\n".join(self._buffer) + message_body
        del self._buffer[:]
        self.send(message)


class BareSender:
    """The named anchor's client: one kept-alive http.client connection per thread, a POST, its answer."""

    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url)
        self.path = parts.path
        self.conn = BareConnection(parts.hostname, parts.port, timeout=10)

    def post(self, request: Request) -> None:
        self.conn.request("POST", self.path, body=request.body, headers=request.headers)
        answer = self.conn.getresponse()
        answer.read()
        if answer.status != 200:
            raise SystemExit(f"the receiver answered the anchor {answer.status}")

    def close(self) -> None:
        self.conn.close()


ANCHORS = {  # name -> a client for one thread
    "http.client": BareSender,
    "transport": lambda url: Sender(timeout=10, allow_private=True),
}


def anchor(receiver: RemoteReceiver, n: int, threads: int, kind: str = "http.client") -> tuple[float, float]:
    """The same signed requests, POSTed by `threads` threads with no Redis and no worker, through `kind`'s
    client (ANCHORS): requests/s, and this process's CPU seconds per request."""
    fmt = StandardFormat(Endpoint(name="bench", url=receiver.url, secrets=(SECRET,), allow_private=True))
    entries = [stream_entry(item(i)) for i in range(n)]  # the bodies the worker sends: the item as queued
    requests = [fmt.request(json.loads(e["data"]), f"anchor-{i}", "2025-03-01T02:00:05.000Z", e["data"])
                for i, e in enumerate(entries)]
    chunks = [requests[i::threads] for i in range(threads)]

    def post_all(chunk: list[Request]):
        sender = ANCHORS[kind](receiver.url)
        for request in chunk:
            sender.post(request)
        sender.close()

    workers = [threading.Thread(target=post_all, args=(c,)) for c in chunks]
    start, cpu = time.perf_counter(), time.process_time()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    receiver.dump()
    return n / elapsed, cpu / n


def _produce(redis_url: str, stream: str, first: int, n: int, conn) -> None:
    """Queue items first..first+n-1 the way the crawler does, from a process of its own; send the time
    the queueing began."""
    client = redis.Redis.from_url(redis_url)
    pipe = client.pipeline(transaction=False)
    for number in range(first, first + n):
        pipe.xadd(stream, stream_entry(item(number)))
    conn.send(time.time())
    pipe.execute()
    client.close()


def queue_items(redis_url: str, stream: str, first: int, n: int) -> tuple[float, float]:
    """Queue `n` items from another process (spawned: this one runs threads); when the queueing began,
    and this process's CPU time then."""
    context = multiprocessing.get_context("spawn")
    here, there = context.Pipe()
    producer = context.Process(target=_produce, args=(redis_url, stream, first, n, there), daemon=True)
    producer.start()
    began = here.recv()
    return began, time.process_time()


def _thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread of this process, by thread name."""
    tick, out = os.sysconf("SC_CLK_TCK"), {}
    for t in threading.enumerate():
        try:
            fields = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[t.name] = (int(fields[11]) + int(fields[12])) / tick
    return out


def profile(args, client, settings, receiver: RemoteReceiver) -> list[str]:
    """Where the worker's time goes on a backlog of `args.profile` items (see the module docstring)."""
    n = args.profile
    calls = lambda: {k.removeprefix("cmdstat_"): v["calls"] for k, v in client.info("commandstats").items()}  # noqa: E731
    queue_items(args.redis_url, settings.keys.items, 0, n)
    while client.xlen(settings.keys.items) < n:
        time.sleep(0.05)
    worker, stop = AlertWorker(client, settings), threading.Event()
    before, usage, cpu = calls(), resource.getrusage(resource.RUSAGE_SELF), time.process_time()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    if not receiver.wait(n, timeout=600):
        raise SystemExit("the receiver did not get every item within 600 s")
    cpu, threads = time.process_time() - cpu, _thread_cpu()
    after, done = calls(), resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    thread.join(30)
    receiver.dump()
    per_call = {k: (v - before.get(k, 0)) / n for k, v in after.items() if v - before.get(k, 0) > n // 1000}
    rate, anchor_cpu = anchor(receiver, n, args.concurrency)
    final = resource.getrusage(resource.RUSAGE_SELF)
    own_rate, own_cpu = anchor(receiver, n, args.concurrency, "transport")
    return [
        f"profile: a backlog of {n} items for the worker (concurrency {args.concurrency}), then the anchor",
        f"  worker process CPU per delivery {cpu / n * 1e6:.0f} µs; anchor (http.client) CPU per request "
        f"{anchor_cpu * 1e6:.0f} µs ({rate:.0f} requests/s); anchor through the worker's transport "
        f"{own_cpu * 1e6:.0f} µs ({own_rate:.0f} requests/s)",
        "  worker threads, CPU µs per delivery: " + ", ".join(
            f"{name} {t / n * 1e6:.0f}" for name, t in sorted(threads.items()) if name.startswith("alerts")),
        "  Redis commands per delivery: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(per_call.items())),
        f"  context switches per item: worker {(done.ru_nvcsw - usage.ru_nvcsw) / n:.2f} voluntary, "
        f"{(done.ru_nivcsw - usage.ru_nivcsw) / n:.2f} involuntary; anchor {(final.ru_nvcsw - done.ru_nvcsw) / n:.2f}, "
        f"{(final.ru_nivcsw - done.ru_nivcsw) / n:.2f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency-items", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile the worker on N items")
    parser.add_argument("--redis-url", default=os.environ.get("NEWSWATCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--out")
    args = parser.parse_args()
    args.out = args.out or str(Path(__file__).resolve().parent / "results" /
                               ("alerts-profile.txt" if args.profile else "alerts.txt"))

    client = client_from_url(args.redis_url)
    server_version = client.info("server")["redis_version"]
    prefix = f"nwbench-{uuid.uuid4().hex[:8]}"
    receiver = RemoteReceiver()
    lines = []
    try:
        settings = Settings.load({
            "NEWSWATCH_REDIS_URL": args.redis_url, "NEWSWATCH_KEY_PREFIX": prefix,
            "NEWSWATCH_WEBHOOK_URL": receiver.url, "NEWSWATCH_WEBHOOK_SECRET": SECRET,
            "NEWSWATCH_WEBHOOK_ALLOW_PRIVATE": "1", "NEWSWATCH_WEBHOOK_CONCURRENCY": str(args.concurrency),
            "NEWSWATCH_WEBHOOK_CONSUMER": "bench",
        })
        keys = settings.keys
        header = [
            f"newswatch alert delivery benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')}",
            f"machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"Redis {server_version} (redis-py {redis.__version__}, "
            f"{'hiredis' if HIREDIS_AVAILABLE else 'pure-Python'} parser); "
            "receiver: ThreadingHTTPServer in a separate process on loopback; "
            f"1-minute load average at the start: {os.getloadavg()[0]:.1f}",
        ]
        if args.profile:
            lines = [*header, f"command: python bench/alerts.py --profile {args.profile} "
                     f"--concurrency {args.concurrency}", "", *profile(args, client, settings, receiver),
                     f"1-minute load average at the end: {os.getloadavg()[0]:.1f}"]
            return 0

        # 1. throughput from a backlog, in rounds alternating with the anchor (this machine's load varies
        #    by the second: a ratio is only meaningful between runs made side by side)
        worker = AlertWorker(client, settings)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        rounds = []
        for r in range(args.rounds):
            ceiling, anchor_cpu = anchor(receiver, args.items, args.concurrency)
            own, own_cpu = anchor(receiver, args.items, args.concurrency, "transport")
            start_wall, start_cpu = queue_items(args.redis_url, keys.items, r * args.items, args.items)
            if not receiver.wait(args.items, timeout=300):
                print("the receiver did not get every item within 300 s", file=sys.stderr)
                return 1
            worker_cpu = (time.process_time() - start_cpu) / args.items
            got = receiver.dump()
            wanted = {f"bench-{n}" for n in range(r * args.items, (r + 1) * args.items)}
            missing = len(wanted - {i for i, _ in got})
            elapsed = max(t for _, t in got) - start_wall
            rounds.append((args.items / elapsed, ceiling, elapsed, len(got), missing, worker_cpu, anchor_cpu,
                           own, own_cpu))
        start = args.rounds * args.items

        # 2. latency with an idle, waiting worker
        sent: dict[str, float] = {}
        for n in range(start, start + args.latency_items):
            it = item(n)
            sent[it["id"]] = time.time()
            client.xadd(keys.items, stream_entry(it))
            time.sleep(0.005)
        receiver.wait(args.latency_items, timeout=60)
        arrivals = {}
        for msg_id, at in receiver.dump():
            arrivals.setdefault(msg_id, at)
        latencies = sorted((arrivals[i] - sent[i]) * 1000 for i in sent if i in arrivals)
        stop.set()
        thread.join(30)

        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        ratios = [rate / ceiling for rate, ceiling, *_ in rounds]
        own_ratios = [r[0] / r[7] for r in rounds]
        lines = [
            *header[:-1], header[-1] + f", at the end: {os.getloadavg()[0]:.1f}",
            f"command: python bench/alerts.py --items {args.items} --concurrency {args.concurrency} "
            f"--latency-items {args.latency_items} --rounds {args.rounds}",
            "",
            f"throughput, {args.items} queued items per round, Standard Webhooks signed, concurrency {args.concurrency};",
            "each round: the anchor (the same requests as bare http.client POSTs, same threads, no Redis), the",
            "same POSTs through the worker's transport (alerts/transport.py), then the worker",
            *(f"  round {i + 1}: worker {rate:6.0f} deliveries/s ({elapsed:.2f} s, {n} requests, {missing} missing)"
              f"   anchor {ceiling:6.0f} requests/s   ratio {rate / ceiling:.2f}"
              f"   transport anchor {own:6.0f} requests/s   ratio {rate / own:.2f}"
              f"   CPU per item: worker {w_cpu * 1e6:.0f} µs, anchor {a_cpu * 1e6:.0f} µs, transport anchor "
              f"{o_cpu * 1e6:.0f} µs"
              for i, (rate, ceiling, elapsed, n, missing, w_cpu, a_cpu, own, o_cpu) in enumerate(rounds)),
            f"  ratio worker / anchor (http.client): median {statistics.median(ratios):.2f} "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f})",
            f"  ratio worker / transport anchor: median {statistics.median(own_ratios):.2f} "
            f"(min {min(own_ratios):.2f}, max {max(own_ratios):.2f})",
            "",
            f"latency XADD → receipt, {len(latencies)} items added one at a time every 5 ms to an idle worker:",
            f"  p50 {p50:.1f} ms   p99 {p99:.1f} ms   max {latencies[-1]:.1f} ms",
        ]
    finally:
        receiver.stop()
        stale = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if stale:
            client.delete(*stale)
        if lines:
            write_report(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
