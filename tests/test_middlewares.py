"""Downloader middlewares as components: the origin guard and Retry-After parsing."""

from __future__ import annotations

import pytest
from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.test import get_crawler

from crawler.middlewares import OriginGuardMiddleware, origin, retry_after_seconds


@pytest.fixture
def guard():
    return OriginGuardMiddleware("http://127.0.0.1:8080", get_crawler().stats)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/international?page=1",
    "http://127.0.0.1:8080/international/1.html",
])
def test_same_origin_passes(guard, url):
    assert guard.process_request(Request(url)) is None


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8081/international/1.html",   # another port of the same host
    "https://127.0.0.1:8080/international/1.html",  # another scheme
    "http://localhost:8080/international/1.html",   # another host name
    "http://169.254.169.254/latest/meta-data/",     # a metadata address
    "http://10.0.0.1:8080/",                        # a private address
    "data:,",                                       # nothing in a pass is fetched from anywhere else
])
def test_other_origins_are_dropped(guard, url):
    with pytest.raises(IgnoreRequest):
        guard.process_request(Request(url))
    assert guard.stats.get_value("newswatch/offsite_blocked") == 1


def test_origin_default_ports():
    assert origin("https://daydaynews.cc/x") == origin("https://DAYDAYNEWS.cc:443/y")
    assert origin("http://daydaynews.cc") != origin("https://daydaynews.cc")


def test_retry_after_values():
    assert retry_after_seconds(b"7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 30) == pytest.approx(30, abs=1)
    assert retry_after_seconds(b"soon") is None
    assert retry_after_seconds(None) is None
