"""Prometheus endpoint: the figures of `newswatch status`, read from Redis at each scrape.

Reads the setting `metrics_port` (unset: no endpoint). Served by `newswatch run` on every instance,
leader or standby: the figures live in the shared Redis, and `newswatch_leader` tells which instance
schedules. The figures are collected at scrape time, not kept in process counters, so every instance
reports the same numbers and a restart loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import redis
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector

from newswatch.status import collect

log = logging.getLogger(__name__)

OUTCOMES = ("ok", "empty", "failed", "timeout", "killed", "interrupted", "deferred")
SUCCESSES = ("ok", "deferred")  # deferred: the site asked for time (429/503) and got it; not a failure


def _timestamp(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class StatusCollector:
    def __init__(self, settings, client: Callable[[], redis.Redis | None], leading: Callable[[], bool]):
        self.settings, self.client, self.leading = settings, client, leading

    def collect(self):
        up = GaugeMetricFamily("newswatch_redis_up", "1 when the daemon can read its figures from Redis")
        leader = GaugeMetricFamily("newswatch_leader", "1 when this instance holds the scheduler's leader lock")
        leader.add_metric([], 1.0 if self.leading() else 0.0)
        client = self.client()
        try:
            figures = collect(client, self.settings, runs=self.settings.history_size) if client else None
        except redis.RedisError as exc:
            log.warning("metrics: cannot read Redis: %s", exc)
            figures = None
        up.add_metric([], 1.0 if figures is not None else 0.0)
        yield up
        yield leader
        if figures is None:
            return
        yield from self._figures(figures)

    def _figures(self, figures: dict):
        def gauge(name, doc, value):
            metric = GaugeMetricFamily(name, doc)
            metric.add_metric([], float(value))
            return metric

        yield gauge("newswatch_stream_length", "entries in the item stream", figures["stream"]["length"])
        yield gauge("newswatch_dead_letters", "entries in the dead-letter stream", figures["dead_letters"])
        yield gauge("newswatch_seen_urls", "article URLs recorded as seen", figures["seen_urls"])
        yield gauge("newswatch_fingerprints", "fingerprints in the dedupe index", figures["fingerprints"])
        yield gauge("newswatch_failed_streak", "revisits in a row that did not succeed", figures["failed_streak"])
        yield gauge("newswatch_leader_present", "1 when some instance holds the leader lock",
                    1 if figures["leader"] else 0)
        next_run = _timestamp(figures["next_run"])
        if next_run is not None:
            yield gauge("newswatch_next_run_timestamp_seconds", "when the next revisit is due", next_run)
        deferred_until = _timestamp((figures.get("deferral") or {}).get("until"))
        if deferred_until is not None:
            yield gauge("newswatch_deferred_until_timestamp_seconds",
                        "the site answered 429/503: no request to it before this time", deferred_until)

        pending = GaugeMetricFamily("newswatch_group_pending", "entries delivered but not acknowledged",
                                    labels=["group"])
        lag = GaugeMetricFamily("newswatch_group_lag", "entries not yet delivered to the group", labels=["group"])
        consumers = GaugeMetricFamily("newswatch_group_consumers", "consumers in the group", labels=["group"])
        for group in figures["groups"]:
            pending.add_metric([group["name"]], group["pending"])
            lag.add_metric([group["name"]], group["lag"])
            consumers.add_metric([group["name"]], group["consumers"])
        yield pending
        yield lag
        yield consumers

        runs = figures["runs"]
        by_outcome = GaugeMetricFamily("newswatch_history_runs", "runs in the kept history by outcome",
                                       labels=["outcome"])
        for outcome in OUTCOMES:
            by_outcome.add_metric([outcome], sum(1 for run in runs if run.get("outcome") == outcome))
        yield by_outcome
        if runs:
            last = runs[0]
            yield gauge("newswatch_last_run_success", "1 when the latest revisit's outcome was ok or deferred",
                        1 if last.get("outcome") in SUCCESSES else 0)
            if isinstance(last.get("duration"), (int, float)):
                yield gauge("newswatch_last_run_duration_seconds", "duration of the latest revisit",
                            last["duration"])
            ended = _timestamp(last.get("ended_at") or last.get("started_at"))
            if ended is not None:
                yield gauge("newswatch_last_run_timestamp_seconds", "when the latest revisit ended", ended)
            counts = GaugeMetricFamily("newswatch_last_run_count", "the latest revisit's counts",
                                       labels=["kind"])
            for kind, value in (last.get("counts") or {}).items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    counts.add_metric([kind], value)
            yield counts


class MetricsServer:
    def __init__(self, server, thread):
        self.server, self.thread = server, thread

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def shutdown(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(settings, client: Callable[[], redis.Redis | None], leading: Callable[[], bool],
          addr: str = "0.0.0.0") -> MetricsServer:
    """Start the endpoint on `settings.metrics_port` (0: any free port) in a background thread."""
    registry = CollectorRegistry()
    registry.register(StatusCollector(settings, client, leading))
    ProcessCollector(registry=registry)  # the daemon's own RSS and CPU, to watch for leaks
    server, thread = start_http_server(settings.metrics_port, addr=addr, registry=registry)
    log.info("Prometheus metrics on %s:%d/metrics", addr, server.server_address[1])
    return MetricsServer(server, thread)
