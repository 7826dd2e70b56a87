"""The `newswatch` command: parse arguments, load settings once, hand them to the step that does the work.

Exit status: 0 done, 1 the work failed, 2 bad configuration or input (one line naming it, no traceback).

Each command's package is imported lazily, when that command runs (marked `lazy:`): Scrapy, APScheduler and
the extraction libraries take a second or more to import, which `config`, `status` or `--help` need not pay.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from newswatch import __version__, parsers
from newswatch.config import Settings
from newswatch.errors import ConfigError, CrawlFailed, CrawlInterrupted, InputError, RedisUnavailable
from newswatch.inputs import numbered_lines
from newswatch.observability import init_sentry

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130  # the shell's convention for a command ended by SIGINT (128 + 2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newswatch",
        description="Watch 天天要聞 (daydaynews.cc) for new articles on US–Russia talks; queue each new one "
                    "in a Redis stream and deliver it to alert webhooks.",
        epilog="Settings come from NEWSWATCH_* environment variables or the TOML file in NEWSWATCH_CONFIG; "
               "`newswatch config` lists them all.")
    parser.add_argument("--version", action="version", version=f"newswatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("run", help="the service: scheduled revisits, plus the alert worker when a webhook is configured")

    crawl = sub.add_parser("crawl", help="one revisit pass now, in the foreground, with a summary")
    crawl.add_argument("--site-url", help="origin of the site or a replica (scheme://host[:port])")
    crawl.add_argument("--baseline", action="store_true",
                       help="record what is on the site as seen without queueing it (no alert flood on first start)")
    crawl.add_argument("--json", action="store_true", help="print the summary as JSON")
    crawl.add_argument("--quiet", action="store_true", help="no progress line")
    crawl.add_argument("--trigger", default=None, help=argparse.SUPPRESS)  # the daemon labels its runs
    crawl.add_argument("--worker", action="store_true",
                       help="with NEWSWATCH_FRONTIER=redis: join the running pass (or wait for the next) as an "
                            "extra crawler process, then exit when it ends")

    alerts = sub.add_parser("alerts", help="the alert worker alone")
    alerts.add_argument("--replay-dead", action="store_true", help="send dead letters again, then exit")
    alerts.add_argument("--enable", metavar="ENDPOINT", help="re-enable an endpoint disabled by a 410, then exit")

    status = sub.add_parser("status", help="last runs, next run, leader, stream, deliveries, dead letters")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    sub.add_parser("config", help="every setting with its effective value and where it came from")

    probe = sub.add_parser("probe", help="fetch one article and one list page and show what is extracted")
    probe.add_argument("url", nargs="?", help="article URL (default: the newest article of the first list page)")
    probe.add_argument("--site-url", help="origin of the site or a replica")

    dedupe = sub.add_parser("dedupe", help="decide whether b is a reprint of a, for JSON lines {a, b}")
    dedupe.add_argument("file", help="file of JSON lines {\"a\": earlier text, \"b\": later text}, or - for stdin")

    topic = sub.add_parser("topic", help="judge JSON lines {title, body} with the crawl's topic rule")
    topic.add_argument("file", help="file of JSON lines {\"title\": ..., \"body\": ...} (strings; a missing or null one counts as "
                            "empty), or - for stdin")
    topic.add_argument("--topic", help="topic file (default: NEWSWATCH_TOPICS, else the built-in one)")
    return parser


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level, logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level != "DEBUG":
        # APScheduler logs two lines per run at INFO; the daemon logs its own line per revisit.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        settings = Settings.load()
        if getattr(args, "site_url", None):
            settings = settings.with_overrides(site_url=args.site_url)
        setup_logging(settings.log_level)
        return _dispatch(args, settings)
    except (ConfigError, InputError) as exc:
        print(f"newswatch: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RedisUnavailable as exc:
        print(f"newswatch: {exc} (set NEWSWATCH_REDIS_URL, or unset it for the embedded server)", file=sys.stderr)
        return EXIT_BAD_INPUT
    except CrawlFailed as exc:
        print(f"newswatch: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except CrawlInterrupted as exc:
        print(f"newswatch: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _dispatch(args, settings) -> int:
    if args.command in ("run", "config") and settings.topics:
        # the crawl's own loader, so `run` refuses at start (and `config` reports) a topic file every revisit
        # would fail on; it lives in crawler/, which newswatch's settings must not import
        from crawler.topic import load_topic  # lazy: see the module's docstring

        load_topic(settings.topics)
    if args.command == "config":
        return config_command(settings)
    if args.command == "dedupe":
        return dedupe_command(settings, args.file)
    if args.command == "topic":
        from crawler.topic_command import topic_command  # lazy: see the module's docstring

        return topic_command(settings, args.file, args.topic)
    init_sentry(settings, component=args.command)
    if args.command == "crawl":
        from crawler.run import crawl_command  # lazy: see the module's docstring

        if args.worker and settings.frontier != "redis":
            raise ConfigError("NEWSWATCH_FRONTIER", "--worker needs NEWSWATCH_FRONTIER=redis (a shared frontier)")
        return crawl_command(settings, baseline=args.baseline, as_json=args.json, quiet=args.quiet,
                             worker=args.worker, trigger=args.trigger)
    if args.command == "probe":
        from crawler.probe import probe_command  # lazy: see the module's docstring

        return probe_command(settings, args.url and parsers.http_url("URL", args.url))
    if args.command == "run":
        from scheduler.daemon import run_command  # lazy: see the module's docstring

        return run_command(settings)
    if args.command == "status":
        from newswatch.status import status_command  # lazy: see the module's docstring

        return status_command(settings, as_json=args.json)
    if args.command == "alerts":
        from alerts.command import alerts_command  # lazy: see the module's docstring

        return alerts_command(settings, replay_dead=args.replay_dead, enable=args.enable)
    raise InputError(f"unknown command {args.command!r}")


def config_command(settings) -> int:
    rows = settings.describe()
    width = max(len(name) for name, _, _ in rows)
    for name, value, source in rows:
        print(f"{name:<{width}}  {value}  [{source}]")
    return EXIT_OK


def dedupe_command(settings, path: str) -> int:
    """One JSON line out per line in: the pipeline's own decision and the whole-text SimHash distance."""
    from crawler.dedupe import compare  # lazy: see the module's docstring

    for number, line in numbered_lines(path):
        try:
            pair = json.loads(line)
            a, b = pair["a"], pair["b"]
            if not isinstance(a, str) or not isinstance(b, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise InputError(f"{path}: line {number}: expected a JSON object "
                             f'{{"a": "earlier text", "b": "later text"}}') from None
        verdict = compare(a, b, min_chars=settings.dedupe_min_chars)
        print(json.dumps({"duplicate": verdict.duplicate, "distance": verdict.distance}))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
