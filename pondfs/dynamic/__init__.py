"""Computed kinds: factories whose directories and files derive from other nodes.

Each computed kind is one module here whose ``KIND`` (a :class:`~pondfs.kinds.Kind`)
``pondfs.kinds`` registers by name and imports when the kind is first used: ``glob``
(:mod:`.globbed`), ``timeseries-join`` (:mod:`.join`), ``temporal-reduce`` (:mod:`.reduce`),
``sql-derived`` (:mod:`.sql_derived`) and ``template`` (:mod:`.template`).

Shared pieces (inputs by pattern, the rule for naming outputs, fingerprints, cached computed
files, Parquet helpers) are in :mod:`pondfs.dynamic.computed`; the order in which ``pond
apply`` stages resources is :mod:`pondfs.dynamic.depends`.
"""
