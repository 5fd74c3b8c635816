"""SunSpec device profile (DESIGN §13): models 1, 701, 702, 704, 713 and 802 at holding
register 40000, laid out from the SunSpec model definitions that pysunspec2 ships.

Pure: no pymodbus, no asyncio, no clock. ``modbus/sunspec_face.py`` serves it.
"""

from .image import SunSpecDevice
from .layout import BASE_ADDRESS, MODEL_IDS, Layout, SunSpecPoint, load_layout

__all__ = ["BASE_ADDRESS", "MODEL_IDS", "Layout", "SunSpecDevice", "SunSpecPoint", "load_layout"]
