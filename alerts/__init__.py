"""The consumer side: deliver each new item of the stream to alert webhooks, at least once.

One consumer group per endpoint (`alerts:<name>`), so a slow or failing endpoint never delays another.
Modules, in the order a delivery passes through them: `formats` (the body and any platform signing),
`signing` (Standard Webhooks signatures), `safety` (which addresses may be connected to), `delivery` (one
HTTP POST, classified), `attempt` (one item's attempt: rate limit, request, answer; whatever raised is one
failure), `retry` (backoff state kept in Redis), `ratelimit` (platform message limits), `deadletters`
(failed for good, and `--replay-dead`), `membership` (a consumer's reads and claims in its group), `acks`
(acknowledgements sent with a delivery thread's next request to Redis), `lease` (the consumer name, on
redis-py's Lock), `runner` (one endpoint's delivery and housekeeping threads), `worker` (every endpoint's
runner), `command` (`newswatch alerts`). The consumer groups themselves are in `newswatch.groups`, shared
with stream trimming. Imports no Scrapy.
"""
