from __future__ import annotations

from minerlens_collector.agent.spool import Outgoing, Spool


def _item(i: int, size: int = 100, pod: str = "p") -> Outgoing:
    return Outgoing(key=b"k", value=bytes(size), headers=[], events=i, pod_uid=pod)


def test_full_spool_drops_oldest_and_counts() -> None:
    s = Spool(max_bytes=350)
    assert s.put(_item(1)) == []
    s.put(_item(2))
    s.put(_item(3))
    evicted = s.put(_item(4))
    assert [e.events for e in evicted] == [1]
    assert [x.events for x in s.peek(10)] == [2, 3, 4]
    assert s.dropped_messages == 1
    assert s.dropped_events == 1
    assert s.bytes == 300


def test_pop_only_removes_the_head() -> None:
    s = Spool(max_bytes=1000)
    a, b = _item(1), _item(2)
    s.put(a)
    s.put(b)
    s.pop(b)  # not the head: nothing happens
    assert len(s) == 2
    s.pop(a)
    s.pop(b)
    assert len(s) == 0
    assert s.bytes == 0


def test_a_single_oversized_message_is_kept() -> None:
    s = Spool(max_bytes=10)
    assert s.put(_item(1, size=50)) == []
    assert len(s) == 1
