"""_utils.prefetch: a bounded background producer, in order, errors where they happened."""

import threading
import time

import pytest

from deepfakedetect import ConfigError
from deepfakedetect._utils import prefetch


def test_order_kept_and_error_reraised_at_its_position():
    def source():
        yield from range(3)
        raise ValueError("boom at 3")

    got = []
    with pytest.raises(ValueError, match="boom at 3"):
        for x in prefetch(source(), maxsize=2):
            got.append(x)
    assert got == [0, 1, 2]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_maxsize(bad):
    with pytest.raises(ConfigError, match="maxsize"):
        prefetch([1], maxsize=bad)


def test_runs_in_another_thread_at_most_maxsize_ahead_and_stops_on_close():
    produced = []
    closed = threading.Event()

    def source():
        try:
            for i in range(1000):
                produced.append(threading.current_thread().name)
                yield i
        finally:
            closed.set()

    it = prefetch(source(), maxsize=3)
    assert next(it) == 0
    time.sleep(0.2)
    # One taken, three waiting in the queue, one held by the blocked producer.
    assert len(produced) <= 5
    assert set(produced) == {"dfd-prefetch"}
    it.close()
    assert closed.wait(2.0)
    assert not any(t.name == "dfd-prefetch" and t.is_alive() for t in threading.enumerate())
