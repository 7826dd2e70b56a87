"""Dead letters: deliveries that failed for good, kept in the stream `keys.dead` for a person to look at.

An entry holds `endpoint`, `group`, `entry` (the item stream's entry id), `id` (the webhook-id), `error`
(the last failure), `attempts`, `failed_at` and `data` (the item JSON). Moving an item there, acknowledging
it in its group and forgetting its retry record happen in one transaction, so an item is never both lost
and acknowledged, nor dead-lettered twice.

`replay()` (`newswatch alerts --replay-dead`) sends each dead letter once more to its endpoint, through the
same attempt as the runner (`attempt.EndpointDelivery`): a delivered one is removed from the dead-letter
stream, a failed one stays (its failure is logged), and a 410 disables the endpoint as in the runner.
"""

from __future__ import annotations

import logging
import time

from alerts.attempt import EndpointDelivery, mark_gone, read_item

log = logging.getLogger(__name__)


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def move_to_dead(client, keys, *, endpoint: str, entry_id: str, msg_id: str, data: str, error: str,
                 attempts: int) -> None:
    pipe = client.pipeline(transaction=True)
    pipe.xadd(keys.dead, {"endpoint": endpoint, "group": keys.group(endpoint), "entry": entry_id,
                          "id": msg_id, "error": error, "attempts": attempts,
                          "failed_at": f"{time.time():.3f}", "data": data})
    pipe.xack(keys.items, keys.group(endpoint), entry_id)
    pipe.hdel(keys.retry(endpoint), entry_id)
    pipe.execute()
    # error level: Sentry turns it into an event, which is how a person hears of it
    log.error("item %s (entry %s) was not delivered to endpoint %r after %d attempt(s): %s; "
              "moved to the dead letters (`newswatch alerts --replay-dead` sends it again)",
              msg_id, entry_id, endpoint, attempts, error)


def replay(client, settings) -> tuple[int, int]:
    """Send every dead letter once more, the way the runner sends (`attempt`); (delivered, still dead)."""
    keys = settings.keys
    endpoints = {e.name: e for e in settings.endpoints}
    deliveries: dict[str, tuple[EndpointDelivery, object]] = {}
    delivered = kept = 0
    start = "-"
    try:
        while True:
            batch = client.xrange(keys.dead, min=start, max="+", count=100)
            if not batch:
                break
            start = "(" + _text(batch[-1][0])
            for dead_id, fields in batch:
                fields = {_text(k): _text(v) for k, v in fields.items()}
                name = fields.get("endpoint", "")
                endpoint = endpoints.get(name)
                if endpoint is None:
                    log.warning("dead letter %s is for endpoint %r, which is not configured; kept",
                                _text(dead_id), name)
                    kept += 1
                    continue
                if client.exists(keys.disabled(name)):
                    log.warning("endpoint %r is disabled (it answered 410); its dead letters are kept", name)
                    kept += 1
                    continue
                try:
                    item = read_item(fields.get("data", ""))
                except ValueError:
                    log.warning("dead letter %s holds no readable item; kept", _text(dead_id))
                    kept += 1
                    continue
                if name not in deliveries:
                    delivery = EndpointDelivery(client, settings, endpoint)
                    deliveries[name] = (delivery, delivery.sender())
                delivery, sender = deliveries[name]
                result = delivery.attempt(sender, item, fields.get("id") or fields.get("entry", ""),
                                          fields.get("entry", ""), item_json=fields["data"])
                if result.gone is not None:
                    mark_gone(client, keys, name, result.gone)
                if not result.delivered:
                    log.warning("replay of item %s to endpoint %r failed: %s; kept", fields.get("id"), name,
                                result.error)
                    kept += 1
                    continue
                client.xdel(keys.dead, dead_id)
                delivered += 1
                log.info("replayed item %s to endpoint %r", fields.get("id"), name)
    finally:
        for _, sender in deliveries.values():
            sender.close()
    return delivered, kept
