"""Items leave oldest first, and only when no older article of the pass can still arrive."""

from crawler.ordering import OldestFirst


def item(n):
    return {"id": n}


def test_nothing_before_the_list_pages_are_read():
    order = OldestFirst()
    order.lists_in_flight = 1
    order.expect(5)
    order.resolve(5, item(5))
    assert order.ready() == []
    order.lists_in_flight = 0
    assert order.ready() == [item(5)]


def test_an_item_waits_for_older_pending_pages():
    order = OldestFirst()
    for n in (10, 11, 12):
        order.expect(n)
    order.resolve(12, item(12))
    order.resolve(11, item(11))
    assert order.ready() == []          # 10 may still be the original of 11 or 12
    order.resolve(10)                   # failed or no body: nothing to hold
    assert order.ready() == [item(11), item(12)]
    assert len(order) == 0


def test_release_is_progressive_and_drain_takes_the_rest():
    order = OldestFirst()
    for n in (1, 2, 3):
        order.expect(n)
    order.resolve(1, item(1))
    assert order.ready() == [item(1)]
    order.resolve(3, item(3))
    assert order.ready() == []
    assert order.drain() == [item(3)]   # 2 never answered (e.g. dropped as a duplicate request)
