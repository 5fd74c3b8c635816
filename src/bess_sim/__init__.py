"""bess-sim: battery energy storage fleet simulator."""
