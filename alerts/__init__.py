"""The consumer side: deliver each new item of the stream to alert webhooks, at least once.

One consumer group per endpoint (`alerts:<name>`), so a slow or failing endpoint never delays another.
Modules, in the order a delivery passes through them: `formats` (the body and any platform signing),
`signing` (Standard Webhooks signatures), `safety` (which addresses may be connected to), `delivery` (one
HTTP POST, classified), `retry` (backoff state kept in Redis), `ratelimit` (platform message limits),
`worker` (the consumer groups, threads and dead letters; the groups themselves are in `newswatch.groups`, shared with stream trimming). Imports no Scrapy.
"""
