"""A webhook receiver to try newswatch with, offline: `python -m tests.receiver [--port N] [--secret whsec_…]`.

It answers every POST with 204 and prints one line per delivery: the `webhook-id`, whether the Standard
Webhooks signature verifies (with `--secret`, checked by the reference `standardwebhooks` package) and the
item's title. The tests use their own recording receiver (tests/alerts_support.py); this one is for people.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler

from tests.loopback import LoopbackServer, respond


class PrintingReceiver(LoopbackServer):
    thread_name = "receiver"

    def __init__(self, port: int = 0, secret: str | None = None):
        super().__init__(port)
        self.secret = secret

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        if method != "POST":
            respond(request, 405)
            return
        try:
            title = json.loads(body)["data"]["title"]
        except (ValueError, KeyError, TypeError):
            title = f"({len(body)} bytes, not a newswatch item)"
        # printed before the answer, so the lines come in the order the deliveries were accepted
        print(f"{request.headers.get('webhook-id')}  {self.verdict(body, request.headers)}  {title}", flush=True)
        respond(request, 204)

    def verdict(self, body: bytes, headers) -> str:
        if not self.secret:
            return "signature not checked"
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError

        try:
            Webhook(self.secret).verify(body, {k.lower(): v for k, v in headers.items()})
            return "signature ok"
        except WebhookVerificationError as exc:
            return f"SIGNATURE BAD ({exc})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.receiver",
                                     description="Print each newswatch webhook delivery (127.0.0.1 only).")
    parser.add_argument("--port", type=int, default=9000, help="port on 127.0.0.1 (default 9000)")
    parser.add_argument("--secret", help="the whsec_… secret newswatch signs with, to verify each signature")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port: expected 0-65535, got {args.port}")
    receiver = PrintingReceiver(args.port, args.secret)
    try:
        receiver.start()
    except OSError as exc:
        print(f"python -m tests.receiver: cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    print(f"receiving webhooks on http://127.0.0.1:{receiver.port}/hook  (Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
