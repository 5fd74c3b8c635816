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
        raise Interrupted(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: signal handling first, then the CLI (``bess_sim.cli``)."""
    _install_early_signal_handlers()
    try:
        from .cli import main as cli_main

        return cli_main(argv)
    except Interrupted:
        return 0


if __name__ == "__main__":
    sys.exit(main())
