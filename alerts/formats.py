"""Webhook bodies: Standard Webhooks JSON, and the chat-bot formats people actually read news in.

Each format builds the request for one item (body, headers, and the platform's signing where it defines
one) and judges a 2xx answer: the chat platforms answer HTTP 200 even when they reject a message, so
their error code in the body decides whether the item was delivered.

| format   | platform                         | signing                                       | default rate |
|----------|----------------------------------|-----------------------------------------------|--------------|
| standard | any receiver (standardwebhooks)  | webhook-signature, whsec_ secrets             | unlimited    |
| slack    | Slack incoming webhook           | none (the URL is the secret)                  | 60/min       |
| feishu   | Feishu / Lark custom bot         | `timestamp` + `sign` in the body              | 100/min      |
| dingtalk | DingTalk group robot             | `timestamp` + `sign` query parameters         | 20/min       |
| wecom    | WeCom (企业微信) group bot       | none (the URL's key is the secret)            | 20/min       |
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import datetime, timezone
from typing import NamedTuple
from urllib.parse import quote, urlsplit

from alerts.signing import Signer
from newswatch import __version__, defaults, streamids
from newswatch.errors import ConfigError, DeliveryError
from newswatch.webhook_secrets import setting_name

SUMMARY_CHARS = 240
USER_AGENT = f"newswatch/{__version__} (alert webhook)"
_CONTENT_TYPE = "application/json; charset=utf-8"


class Request(NamedTuple):  # not a frozen dataclass: one is built per delivery, and a tuple is cheaper
    url: str
    headers: dict[str, str]
    body: bytes


# one encoder for every call: json.dumps with non-default options builds a JSONEncoder each time
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_encode_str = json.encoder.encode_basestring  # what that encoder does with a str (in C), without its method


def _json(value) -> bytes:
    return _encode(value).encode("utf-8")


def _short(text: str | None, limit: int = SUMMARY_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_time(entry_id: str) -> str:
    """ISO 8601 UTC time of a stream entry, from the milliseconds in its id (when the item was queued)."""
    try:
        ms = streamids.millis(entry_id)
    except ValueError:
        ms = int(time.time() * 1000)
    seconds, millis = divmod(ms, 1000)
    last, text = _last_second
    if seconds != last:  # the entries a worker reads one after the other were mostly queued in the same second
        text = datetime.fromtimestamp(seconds, timezone.utc).isoformat().replace("+00:00", "")
        _last_second[:] = (seconds, text)  # may race with another thread: both write a correct pair
    return f"{text}.{millis:03d}Z"


_last_second = [None, ""]  # (seconds since the epoch, its ISO 8601 text): event_time's one-entry cache


def summary_line(item: dict) -> str:
    """One human line: category, title, publication time."""
    title = item.get("title") or "(untitled)"
    parts = [f"[{item['category']}]", title] if item.get("category") else [title]
    if item.get("published_at"):
        parts.append(f"({item['published_at']})")
    return " ".join(parts)


def _meta(item: dict) -> str:
    bits = [item.get("category"), item.get("published_at"), item.get("source")]
    return " · ".join(str(b) for b in bits if b)


def _lead(item: dict) -> str:
    return _short(item.get("summary") or item.get("body"))


def _first_secret(endpoint, fmt: str) -> str | None:
    if len(endpoint.secrets) > 1:
        raise ConfigError(setting_name(endpoint, "secret"),
                          f"the {fmt} platform signs with one secret; got {len(endpoint.secrets)}")
    return endpoint.secrets[0] if endpoint.secrets else None


class Format:
    """Base: a JSON POST whose 2xx answer is a delivery. Subclasses add their platform's rules."""

    name = "standard"
    signs_headers = False

    def __init__(self, endpoint):
        self.endpoint = endpoint
        parts = urlsplit(endpoint.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(setting_name(endpoint, "url"), "expected an http(s) URL")

    @property
    def rate_per_minute(self) -> float | None:
        if self.endpoint.rate_per_minute is not None:
            return self.endpoint.rate_per_minute
        return defaults.WEBHOOK_RATE_PER_MINUTE.get(self.name)

    def headers(self) -> dict[str, str]:
        return {"content-type": _CONTENT_TYPE, "user-agent": USER_AGENT}

    def request(self, item: dict, msg_id: str, event_time: str, item_json: str | bytes | None = None) -> Request:
        """The request for `item`; `item_json` is its JSON text as queued (str, or its UTF-8 bytes), when the
        caller has it."""
        raise NotImplementedError

    def check(self, body: bytes) -> None:
        """Raise DeliveryError when a 2xx answer still says the message was rejected."""


_STANDARD_HEAD = b'{"type":' + _json(defaults.ITEM_EVENT_TYPE) + b',"timestamp":'  # the same for every item


class StandardFormat(Format):
    """Standard Webhooks: `{"type", "timestamp", "data": item, "summary"}`, signed in the headers.

    The body is the same on every attempt (its timestamp is the event's, from the stream entry); only the
    `webhook-timestamp` header and the signature are fresh, as the specification asks.
    """

    signs_headers = True

    def __init__(self, endpoint):
        super().__init__(endpoint)
        self.signer = Signer(endpoint.secrets, setting_name(endpoint, "secret"))

    def request(self, item, msg_id, event_time, item_json=None):
        # `data` is the item as queued, verbatim when its text is at hand (its JSON was read just before):
        # encoding it again was the largest part of building the request (docs/performance.md)
        data = _json(item) if item_json is None else (
            item_json if type(item_json) is bytes else item_json.encode("utf-8"))
        body = b"".join((_STANDARD_HEAD, _encode_str(event_time).encode(), b',"data":', data, b',"summary":',
                         _encode_str(summary_line(item)).encode(), b"}"))
        timestamp = int(time.time())
        headers = {"content-type": _CONTENT_TYPE, "user-agent": USER_AGENT, "webhook-id": msg_id,
                   "webhook-timestamp": str(timestamp)}
        if self.signer:
            headers["webhook-signature"] = self.signer.signature(msg_id, timestamp, body)
        return Request(self.endpoint.url, headers, body)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackFormat(Format):
    """Slack incoming webhook: `text` (the notification) and a `blocks` section with the lead.

    Slack answers `ok` with 200 and uses HTTP status codes for failures (400 invalid_payload, 404/410
    for a removed webhook or archived channel, 429 with Retry-After), so a 2xx is judged only when a
    Slack-compatible receiver returns `{"ok": false}`.
    """

    name = "slack"

    def request(self, item, msg_id, event_time, item_json=None):
        title = _slack_escape(item.get("title") or "(untitled)")
        link = f"<{item['url']}|{title}>" if item.get("url") else title
        text = f"*{link}*\n{_slack_escape(_meta(item))}\n{_slack_escape(_lead(item))}".strip()
        body = _json({"text": f"{title} {item.get('url', '')}".strip(),
                      "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]})
        return Request(self.endpoint.url, self.headers(), body)

    def check(self, body):
        try:
            answer = json.loads(body)
        except ValueError:
            return  # the real Slack answers the plain text "ok"
        if isinstance(answer, dict) and answer.get("ok") is False:
            raise DeliveryError(f"slack rejected the message: {answer.get('error', 'unknown error')}")


class _CodeChecked(Format):
    """Chat platforms that answer 200 with an error code in a JSON body."""

    code_fields: tuple[str, ...] = ("errcode",)
    message_fields: tuple[str, ...] = ("errmsg",)
    rate_limited_codes: frozenset[int] = frozenset()
    rate_limit_wait = 60.0  # these platforms count per minute

    def check(self, body):
        try:
            answer = json.loads(body)
        except ValueError:
            raise DeliveryError(f"{self.name} answered 2xx with a body that is not JSON") from None
        if not isinstance(answer, dict):
            raise DeliveryError(f"{self.name} answered 2xx with an unexpected body")
        code = next((answer[f] for f in self.code_fields if f in answer), None)
        if code is None:
            raise DeliveryError(f"{self.name} answered 2xx without an error code")
        # Only the documented integer 0 is success: `False == 0` (and `0.0 == 0`) hold in Python, so a
        # body of {"errcode": false} would otherwise count as delivered.
        if type(code) is int and code == 0:
            return
        message = next((str(answer[f]) for f in self.message_fields if f in answer), "")
        # a code may be any JSON value (a list is unhashable): only an integer names a rate limit
        limited = type(code) is int and code in self.rate_limited_codes
        retry_after = self.rate_limit_wait if limited else None
        raise DeliveryError(f"{self.name} error code {code}: {message[:200]}", retry_after=retry_after)


def _hmac_b64(key: bytes, message: bytes) -> str:
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def feishu_sign(timestamp: str, secret: str) -> str:
    """Feishu/Lark's `sign`: HMAC-SHA256 keyed with `"{timestamp}\n{secret}"` over an empty message, base64."""
    return _hmac_b64(f"{timestamp}\n{secret}".encode(), b"")


def dingtalk_sign(timestamp: str, secret: str) -> str:
    """DingTalk's `sign` (before URL-encoding): HMAC-SHA256 keyed with the secret over
    `"{timestamp}\n{secret}"`, base64."""
    return _hmac_b64(secret.encode(), f"{timestamp}\n{secret}".encode())


class FeishuFormat(_CodeChecked):
    """Feishu/Lark custom bot: a `post` (rich text) message; signed with `timestamp` and `sign` in the body.

    Feishu's signature is HMAC-SHA256 keyed with `"{timestamp}\\n{secret}"` over an empty message. Its
    answer is `{"code": 0}` (older bots: `{"StatusCode": 0}`); 11232 means the bot's rate limit was hit.
    """

    name = "feishu"
    code_fields = ("code", "StatusCode")
    message_fields = ("msg", "StatusMessage")
    rate_limited_codes = frozenset({11232, 9499})

    def __init__(self, endpoint):
        super().__init__(endpoint)
        self.secret = _first_secret(endpoint, self.name)

    def request(self, item, msg_id, event_time, item_json=None):
        rows = [[{"tag": "text", "text": _meta(item)}], [{"tag": "text", "text": _lead(item)}]]
        if item.get("url"):
            rows.append([{"tag": "a", "text": "閱讀原文", "href": item["url"]}])
        payload = {"msg_type": "post", "content": {"post": {"zh_cn": {
            "title": item.get("title") or "(untitled)", "content": rows}}}}
        if self.secret:
            timestamp = str(int(time.time()))
            payload["timestamp"] = timestamp
            payload["sign"] = feishu_sign(timestamp, self.secret)
        return Request(self.endpoint.url, self.headers(), _json(payload))


class DingTalkFormat(_CodeChecked):
    """DingTalk group robot: a `markdown` message; signed with `timestamp` (ms) and `sign` in the query.

    DingTalk's signature is HMAC-SHA256 keyed with the secret (`SEC…`) over `"{timestamp}\\n{secret}"`.
    Its answer is `{"errcode": 0}`; 130101 means more than 20 messages a minute were sent.
    """

    name = "dingtalk"
    rate_limited_codes = frozenset({130101})

    def __init__(self, endpoint):
        super().__init__(endpoint)
        self.secret = _first_secret(endpoint, self.name)

    def request(self, item, msg_id, event_time, item_json=None):
        title = item.get("title") or "(untitled)"
        text = f"#### {title}\n\n> {_meta(item)}\n\n{_lead(item)}"
        if item.get("url"):
            text += f"\n\n[閱讀原文]({item['url']})"
        body = _json({"msgtype": "markdown", "markdown": {"title": title, "text": text}})
        url = self.endpoint.url
        if self.secret:
            timestamp = str(int(time.time() * 1000))
            sign = dingtalk_sign(timestamp, self.secret)
            url += ("&" if "?" in url else "?") + f"timestamp={timestamp}&sign={quote(sign, safe='')}"
        return Request(url, self.headers(), body)


class WeComFormat(_CodeChecked):
    """WeCom (企业微信) group bot: a `markdown` message (at most 4096 bytes); no signing.

    Its answer is `{"errcode": 0}`; 45009 means the bot's limit of 20 messages a minute was hit.
    """

    name = "wecom"
    rate_limited_codes = frozenset({45009})
    max_bytes = 4096

    def request(self, item, msg_id, event_time, item_json=None):
        # Fit 4096 bytes by cutting the lead, then the metadata, then the title, each once: a bounded
        # number of steps whatever the item holds (halving the lead alone never ended on a long title).
        parts = {"title": item.get("title") or "(untitled)", "meta": _meta(item), "lead": _lead(item)}
        content = self._content(item, parts)
        for name in ("lead", "meta", "title"):
            over = len(content.encode()) - self.max_bytes
            if over <= 0:
                break
            parts[name] = _cut(parts[name], len(parts[name].encode()) - over)
            content = self._content(item, parts)
        content = _cut(content, self.max_bytes)  # only a URL longer than the limit gets here
        return Request(self.endpoint.url, self.headers(),
                       _json({"msgtype": "markdown", "markdown": {"content": content}}))

    @staticmethod
    def _content(item, parts) -> str:
        link = f"[{parts['title']}]({item['url']})" if item.get("url") else parts["title"]
        return f"**{link}**\n> <font color=\"comment\">{parts['meta']}</font>\n{parts['lead']}"


def _cut(text: str, max_bytes: int) -> str:
    """`text` within `max_bytes` of UTF-8, ending in "…" when it was cut (never mid-character)."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    ellipsis = "…".encode()
    if max_bytes < len(ellipsis):
        return ""
    return data[: max_bytes - len(ellipsis)].decode("utf-8", "ignore") + "…"


FORMATS: dict[str, type[Format]] = {
    "standard": StandardFormat, "slack": SlackFormat, "feishu": FeishuFormat,
    "dingtalk": DingTalkFormat, "wecom": WeComFormat,
}


def for_endpoint(endpoint) -> Format:
    """The endpoint's format, with its secrets checked now (a bad one is a ConfigError at start)."""
    try:
        cls = FORMATS[endpoint.format]
    except KeyError:
        raise ConfigError(setting_name(endpoint, "format"),
                          f"expected one of {', '.join(FORMATS)}, got {endpoint.format!r}") from None
    return cls(endpoint)
