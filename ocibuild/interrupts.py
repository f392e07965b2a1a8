"""SIGTERM and SIGINT turned into exceptions, but never inside a fork.

``ocibuild build`` stops on SIGTERM (exit 143) and Ctrl-C (exit 130) by raising
:class:`~ocibuild.errors.Interrupted` or KeyboardInterrupt in the main thread, where the
clean-up code (kill the container, unmount, remove the scratch dir) runs on the way up.

A Python signal handler runs between any two bytecodes of the main thread, including
inside the ``os.register_at_fork`` hooks that ``subprocess.Popen(preexec_fn=...)`` and
``os.fork()`` call (logging's ``_acquireLock``/``_releaseLock``). An exception raised
there is only printed ("Exception ignored in ...") and dropped: the build went on as if
no signal had come (a RUN step of ``sleep 60`` then ran to its end), and the logging
lock could stay held. :func:`deferred` marks such a section: a signal that arrives in
it is remembered and raised when the section ends, at a point the caller chose.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from ocibuild.errors import Interrupted

_depth = 0  # deferred() sections open in the main thread (the only one signals reach)
_pending: list[int] = []


def _exception(signum: int) -> BaseException:
    return KeyboardInterrupt() if signum == signal.SIGINT else Interrupted(signum)


def _handler(signum: int, frame: FrameType | None) -> None:
    if _depth:
        if signum not in _pending:
            _pending.append(signum)
        return
    raise _exception(signum)


def install() -> dict[int, object]:
    """Handle SIGTERM (and SIGINT, unless it is ignored) with :func:`_handler`; returns
    the previous handlers for :func:`restore`. Main thread only."""
    previous: dict[int, object] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        old = signal.getsignal(sig)
        if sig == signal.SIGINT and old is not signal.default_int_handler:
            continue  # ignored (a background job) or someone else's: leave it
        previous[sig] = old
        signal.signal(sig, _handler)
    return previous


def restore(previous: dict[int, object]) -> None:
    """Put back the handlers :func:`install` replaced."""
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGTERM/SIGINT's exception back while the block runs (a fork, a spawn with
    ``preexec_fn``); raise it when the block ends. Outside the main thread, a no-op."""
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _pending:
            signum = _pending.pop(0)
            _pending.clear()
            raise _exception(signum)  # the user's stop wins over the block's own error
