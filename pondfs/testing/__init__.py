"""Test doubles for pondfs, as ``trio.testing`` is for trio: real servers that tests, demos
and benchmarks run in place of services they cannot reach.

:mod:`pondfs.testing.fake_hydrovu`
    a fake HydroVu API on loopback that replays device archives
    (``python -m pondfs.testing.fake_hydrovu --help``).
"""
