"""Entry point of ``bess-sim`` and ``python -m bess_sim``.

SIGINT/SIGTERM are taken over here, before anything heavy is imported: without this a signal
in the first ~0.8 s (while pydantic, FastAPI, pymodbus load) killed the process with -15, or
printed a KeyboardInterrupt traceback. Until the runtime installs its own loop handlers (which
stop every component in order), the first signal unwinds the start-up and exits 0; a second
one during that unwinding is ignored. Only the standard library is imported at module level.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncio


class Interrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM before the runtime took over: unwind and exit 0. A KeyboardInterrupt so
    that asyncio (and uvloop) re-raise it from a callback instead of logging and swallowing
    it, as they do with other BaseExceptions."""


def _install_early_signal_handlers() -> None:
    seen: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if seen:
            return  # already unwinding
        seen.append(signum)
        loop = _running_loop()
        if loop is None:
            raise Interrupted(signum)
        # Inside a running event loop the handler can fire between any two bytecodes of the
        # loop's own machinery; raising there once left uvloop marked "running", and the
        # runner's close() then failed with "Cannot close a running event loop" (a traceback,
        # exit 1). Raised from a callback instead, it leaves the loop the normal way.
        loop.call_soon_threadsafe(_deliver, signum, handler)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    # The signal may land while asyncio itself is being imported (a partially initialised
    # module, seen under load): then no loop can be running yet.
    events = sys.modules.get("asyncio.events")
    get_loop = getattr(events, "_get_running_loop", None)
    if get_loop is None:
        return None
    loop: asyncio.AbstractEventLoop | None = get_loop()
    return loop


def _deliver(signum: int, early_handler: object) -> None:
    if signal.getsignal(signum) is not early_handler:
        # The program installed its own handling meanwhile (the runtime's loop handlers that
        # stop every component in order): the signal is theirs.
        signal.raise_signal(signum)
        return
    raise Interrupted(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: signal handling first, then the CLI (``bess_sim.cli``)."""
    _install_early_signal_handlers()
    try:
        from .cli import main as cli_main

        return cli_main(argv)
    except BaseException as exc:
        if _caused_by_interrupt(exc):
            return 0
        raise


def _caused_by_interrupt(exc: BaseException) -> bool:
    """True when ``exc`` is, or was raised while handling, our :class:`Interrupted`.

    The signal can land anywhere during the imports, and some machinery re-wraps what it
    raises: a dataclass field's ``__set_name__`` hit by it surfaced as ``RuntimeError: Error
    calling __set_name__`` (Python 3.11, seen in CI) with the interrupt as its cause.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, Interrupted):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


if __name__ == "__main__":
    sys.exit(main())
