"""Reading ahead (hepae.io.prefetch): the next chunk is made in another thread, and nothing else changes."""

import threading

import pytest

from hepae.io.prefetch import prefetched


def test_every_item_comes_once_and_in_order():
    assert list(prefetched(iter(range(1000)))) == list(range(1000))
    assert list(prefetched(iter([]))) == []


def test_the_next_item_is_made_in_another_thread_while_the_caller_holds_this_one():
    made_in, next_started = [], threading.Event()

    def items():
        for i in range(3):
            made_in.append(threading.get_ident())
            if i == 1:
                next_started.set()
            yield i

    reading = prefetched(items())
    assert next(reading) == 0
    assert next_started.wait(timeout=10)  # item 1 was made before the caller asked for it
    assert list(reading) == [1, 2]
    assert threading.get_ident() not in made_in


def test_an_error_while_making_an_item_is_raised_when_that_item_is_asked_for():
    def items():
        yield "first"
        raise ValueError("damaged basket in chunk 2")

    reading = prefetched(items())
    assert next(reading) == "first"
    with pytest.raises(ValueError, match="damaged basket"):
        next(reading)


def test_a_caller_that_stops_early_leaves_no_thread_and_reads_at_most_one_item_ahead():
    made = []

    def items():
        for i in range(100):
            made.append(i)
            yield i

    before = threading.active_count()
    reading = prefetched(items())
    assert next(reading) == 0
    reading.close()
    assert made in ([0], [0, 1])
    assert threading.active_count() == before
