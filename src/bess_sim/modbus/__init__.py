"""Modbus TCP face of the simulator. ``points`` and ``registers`` are pure; ``server`` is the
only module that imports pymodbus."""
