"""Collectors: bring data from outside (HydroVu, ...) into the pond as new versions."""
