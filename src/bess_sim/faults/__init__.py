"""HIL fault injection (DESIGN §11): faults scheduled in simulated time and their effects.

Pure (no clock, no I/O, no pymodbus/fastapi/asyncpg): the runtime wires the effects to the
fleet, the Modbus listeners and the faces (fault_wiring.py). Public API:

- :class:`FaultRequest` — what ``POST /faults`` takes (pydantic; errors name the field);
- :class:`FaultBook` — ``add(request) -> Fault``, ``end(fault_id) -> Fault``,
  ``list(asset_id=, state=, limit=, port=)``, ``get(id)``, ``add_listener(cb(fault))``,
  ``add_comm_listener(cb(asset_id, port, kind))``;
- :class:`Fault`, :class:`FaultKind`, :class:`FaultState`, :class:`FaultError`.
"""

from .book import DEFAULT_SEED, FaultBook, FaultError, FaultNotFoundError
from .comm import CommDecision, PortComm
from .model import Fault, FaultKind, FaultState
from .request import FaultRequest

__all__ = [
    "DEFAULT_SEED",
    "CommDecision",
    "Fault",
    "FaultBook",
    "FaultError",
    "FaultKind",
    "FaultNotFoundError",
    "FaultRequest",
    "FaultState",
    "PortComm",
]
