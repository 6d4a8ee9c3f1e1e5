"""A byte budget for images decoded ahead of the model, granted in input order.

:func:`~deepfakedetect.detect_many` decodes images in threads while the model scores
earlier ones. A bound on the *number* of images waiting is no bound on memory: an
85 kB PNG of 9400 x 9400 decodes to 265 MB. So every image's decoding first asks the
budget for its peak cost, estimated from the file's header before any pixel is
decoded; once decoded, the image holds only the bytes of the array it keeps, until the
model has scored it.

Grants go strictly in input order (by *ticket*, the image's position), and a request
waits while what is held plus its cost would exceed the limit, unless nothing is held:
one image larger than the whole budget still goes, alone. So the image the consumer
needs next is never starved by later ones, and the consumer can tell when the next
image waits only for the images it holds itself (:meth:`DecodeBudget.blocked`), and
score those first.
"""

from __future__ import annotations

import threading

__all__ = ["DEFAULT_DECODE_BUDGET", "DecodeBudget"]

#: Bytes of decoded images allowed to exist ahead of the model by default (256 MiB).
DEFAULT_DECODE_BUDGET = 256 * 2**20


class DecodeBudget:
    """Bytes granted to decoding tickets in order, up to a limit.

    Args:
        limit: The most bytes held at once (a single larger request is granted alone).

    Example:
        >>> b = DecodeBudget(100)
        >>> b.acquire(0, 60), b.blocked(1)
        (True, False)
        >>> b.resize(0, 10); b.acquire(1, 80)
        True
        >>> b.release(0); b.release(1); b.held
        0
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._cond = threading.Condition()
        self._held: dict[int, int] = {}
        self._wanted: dict[int, int] = {}
        self._skipped: set[int] = set()
        self._next = 0
        self._closed = False

    @property
    def held(self) -> int:
        """Bytes held now."""
        with self._cond:
            return sum(self._held.values())

    def _advance(self) -> None:
        while self._next in self._skipped:
            self._skipped.discard(self._next)
            self._next += 1

    def _fits(self, nbytes: int) -> bool:
        return not self._held or sum(self._held.values()) + nbytes <= self.limit

    def acquire(self, ticket: int, nbytes: int) -> bool:
        """Wait until ``ticket`` may hold ``nbytes``; ``False`` if the ticket was abandoned or the budget closed."""
        with self._cond:
            self._wanted[ticket] = nbytes
            try:
                while not self._closed and ticket not in self._skipped and ticket >= self._next and not (
                    self._next == ticket and self._fits(nbytes)
                ):
                    self._cond.wait()
                if self._closed or ticket in self._skipped or ticket < self._next:
                    return False
                self._held[ticket] = nbytes
                self._next += 1
                self._advance()
                self._cond.notify_all()
                return True
            finally:
                self._wanted.pop(ticket, None)

    def resize(self, ticket: int, nbytes: int) -> None:
        """``ticket`` now holds ``nbytes`` (after decoding: what the kept array takes, not the peak)."""
        with self._cond:
            if ticket in self._held:
                self._held[ticket] = nbytes
                self._cond.notify_all()

    def release(self, ticket: int) -> None:
        """``ticket`` holds nothing any more (scored or failed). Idempotent."""
        with self._cond:
            if self._held.pop(ticket, None) is not None:
                self._cond.notify_all()

    def abandon(self, ticket: int) -> None:
        """Give up on ``ticket`` (its decoding timed out): free what it holds and let later tickets pass it."""
        with self._cond:
            self._held.pop(ticket, None)
            if ticket >= self._next:
                self._skipped.add(ticket)
                self._advance()
            self._cond.notify_all()

    def blocked(self, ticket: int) -> bool:
        """Whether ``ticket`` waits only for bytes held by earlier tickets (which must be released first)."""
        with self._cond:
            want = self._wanted.get(ticket)
            return want is not None and self._next == ticket and not self._fits(want)

    def close(self) -> None:
        """Refuse every pending and later request (the run is over)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
