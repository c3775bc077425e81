"""The ``template`` factory: text files (web pages, reports) rendered from a Jinja template
for the nodes a pattern matches, with what those nodes hold in the template's context.

Example: one Observable Framework page per site, and one per parameter, from the
directories a temporal-reduce makes (``/reduce/<site>/res=<d>.parquet``)::

    kind: template                       kind: template
    spec:                                spec:
      input: /reduce/*                     input: /reduce/*
      name: $0.md                          each: parameter
      template_file: /site/site.md.j2      name: param-$0.md
                                           template_file: /site/param.md.j2

``each`` says what one output is for:

``match`` (the default)
    every node ``input`` matches (a file, or a directory of Parquet files); ``name`` is a
    template over the match's captures (``$0``, ``$1``; :func:`pondfs.tinyfs.glob.substitute`);
``parameter``
    every parameter (with its unit) in any match's columns; ``$0`` in ``name`` is the
    parameter's slug (``DO.mg/L`` -> ``do-mg-l``);
``all``
    one output, ``name`` as given.

A name that is not usable, or that an earlier output already has, is left out with a
warning (:func:`~pondfs.dynamic.computed.unique_names`).

The template is ``template`` (inline) or ``template_file`` (a pond path). Jinja runs
sandboxed, with undefined names an error rather than empty text, and a ``slug`` filter.
The context (plain lists and mappings; ``{{ x | tojson }}`` writes any of it as JSON):

``matches``
    every match, in path order, each a *match* (below);
``match`` (and its keys at the top level: ``path``, ``captures``, ...), for ``each: match``;
``parameter``, for ``each: parameter``: ``name``, ``unit``, ``slug``, ``label``
    (``DO (mg/L)``) and ``sources``: one per match and instrument with that parameter
    (``match``: the match's path, ``name``, ``captures``, ``instrument``, ``label``,
    ``columns``: aggregation -> column, ``resolutions``);
``output``
    the output file's name.

A *match* has ``path``, ``name`` (its last component), ``captures``, ``time_column``,
``columns`` (each: ``name``, ``type``, ``instrument``, ``parameter``, ``unit``,
``aggregation``), ``parameters`` (each: ``name``, ``unit``, ``slug``, ``label``,
``instruments``: each ``instrument``, ``label``, ``columns``: aggregation -> column),
``instruments`` and ``resolutions`` (each: ``name`` such as ``1h``, ``seconds``, ``file``,
``path``; finest first), from the ``res=<d>.parquet`` files in the matched directory, or
beside the matched file.

Column names split as DuckPond's pipeline writes them: ``<instrument>.<Param>.<Unit>.<agg>``
(a joined, reduced series), ``<Param>.<Unit>.<agg>``, ``<instrument>.<Param>.<Unit>`` and
``<Param>.<Unit>``. The aggregation is the last part when it is one of avg, min, max, count,
sum and at least two parts precede it; then the unit is the last part, the parameter the one
before, and whatever precedes them the instrument. Names may hold spaces, ``:``, ``%`` and
any Unicode, but a ``.`` inside a parameter or unit would be read as a separator.

Outputs are cached (:class:`~pondfs.dynamic.computed.ComputedFile`) by the spec, the
template's version and the fingerprints of every file the context is made from. Listing
renders nothing; with ``each: match`` it reads no schema either (``each: parameter`` must,
to know the parameters).
"""

from __future__ import annotations

import errno
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import pyarrow as pa

from ..kinds import Kind
from ..resources import Fields, SpecError
from ..tinyfs import FILE, FS, DynamicNode, FsError, GlobError, read_all, substitute, validate_name
from .computed import (
    ComputedFile,
    Input,
    StaticDirectory,
    check_template,
    input_mtime_ns,
    parse_duration,
    pattern_field,
    resolve_inputs,
    schema_of,
    unique_names,
    write_text,
)

FACTORY = "template"
EACH = ("match", "parameter", "all")
AGGREGATIONS = ("avg", "min", "max", "count", "sum")
_RESOLUTION = re.compile(r"res=(.+)\.parquet")


# ---------------------------------------------------------------------- the context


def split_column(name: str) -> dict[str, str]:
    """A column name's ``instrument``, ``parameter``, ``unit`` and ``aggregation`` ("" when
    absent), by the rule in the module's docstring.

    >>> split_column("AT500_1.DO.mg/L.avg")
    {'instrument': 'AT500_1', 'parameter': 'DO', 'unit': 'mg/L', 'aggregation': 'avg'}
    >>> split_column("Level: Depth to Water.m")["parameter"]
    'Level: Depth to Water'
    """
    parts = name.split(".")
    aggregation = ""
    if len(parts) >= 3 and parts[-1] in AGGREGATIONS:
        aggregation = parts.pop()
    if len(parts) == 1:
        return {"instrument": "", "parameter": name, "unit": "", "aggregation": aggregation}
    return {"instrument": ".".join(parts[:-2]), "parameter": parts[-2], "unit": parts[-1],
            "aggregation": aggregation}


def slug(text: str) -> str:
    """``text`` as a URL- and file-name-safe word: ASCII lower case, digits and ``-``.

    >>> slug("% Saturation O₂ % sat")
    'saturation-o2-sat'
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or "x"


def _label(parameter: str, unit: str) -> str:
    return f"{parameter} ({unit})" if unit else parameter


def duration_seconds(text: str) -> int | None:
    """``1h`` -> 3600 (see :func:`~pondfs.dynamic.computed.parse_duration`); None when
    ``text`` is not a duration."""
    try:
        return parse_duration(text, "")
    except SpecError:
        return None


def resolutions(directory: str, names: Iterable[str]) -> list[dict[str, Any]]:
    """The ``res=<d>.parquet`` entries among ``names`` in ``directory``, finest first."""
    found = []
    for name in names:
        m = _RESOLUTION.fullmatch(name)
        if m:
            found.append({"name": m.group(1), "seconds": duration_seconds(m.group(1)),
                          "file": name, "path": f"{directory.rstrip('/')}/{name}"})
    return sorted(found, key=lambda r: (r["seconds"] is None, r["seconds"] or 0, r["name"]))


def describe_columns(schema: pa.Schema, time_column: str) -> dict[str, Any]:
    """``columns``, ``parameters`` and ``instruments`` of a schema (time column left out)."""
    columns = []
    parameters: dict[tuple[str, str], dict[str, Any]] = {}
    instruments: list[str] = []
    for field in schema:
        if field.name == time_column or pa.types.is_timestamp(field.type):
            continue
        parts = split_column(field.name)
        columns.append({"name": field.name, "type": str(field.type), **parts})
        key = (parts["parameter"], parts["unit"])
        parameter = parameters.setdefault(key, {
            "name": key[0], "unit": key[1], "slug": slug(" ".join(k for k in key if k)),
            "label": _label(*key), "instruments": []})
        by_instrument = {i["instrument"]: i for i in parameter["instruments"]}
        entry = by_instrument.get(parts["instrument"])
        if entry is None:
            entry = {"instrument": parts["instrument"], "label": parts["instrument"],
                     "columns": {}}
            parameter["instruments"].append(entry)
        entry["columns"][parts["aggregation"] or "value"] = field.name
        if parts["instrument"] and parts["instrument"] not in instruments:
            instruments.append(parts["instrument"])
    return {"columns": columns, "parameters": list(parameters.values()),
            "instruments": instruments}


# ---------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class TemplateSpec:
    """A checked ``template`` spec."""

    input: str
    each: str
    name: str
    template: str | None
    template_file: str | None
    time_column: str

    def settings(self) -> dict[str, Any]:
        return {"input": self.input, "each": self.each, "name": self.name,
                "template": self.template, "template_file": self.template_file,
                "time_column": self.time_column}


def check(spec: dict) -> TemplateSpec:
    """``spec`` checked (SpecError naming the field) and parsed."""
    fields = Fields(spec, "spec")
    pattern = pattern_field(fields, "input")
    each = fields.get("each", str, "match")
    if each not in EACH:
        raise SpecError("spec.each", f"must be one of {', '.join(EACH)}, not {each!r}")
    name = fields.get("name", str)
    captures = {"match": None, "parameter": 1, "all": 0}[each]
    if captures is None:
        check_template(name, pattern, "spec.name")
    else:
        try:
            substitute(name, ["x"] * captures)
        except GlobError as exc:
            hint = " ($0 is the parameter's slug)" if captures else " (each: all has none)"
            raise SpecError("spec.name", f"{exc}{hint}") from None
    if each == "all":
        try:
            validate_name(substitute(name, []))
        except FsError as exc:
            raise SpecError("spec.name", str(exc)) from None
    inline = fields.get("template", str, None)
    template_file = fields.get("template_file", str, None)
    if (inline is None) == (template_file is None):
        raise SpecError("spec.template", "give either template (the text) or template_file "
                        "(a pond path), not " + ("both" if inline is not None else "neither"))
    if inline is not None:
        _compile(inline, "spec.template")
    if template_file is not None and not template_file.startswith("/"):
        raise SpecError("spec.template_file", f"must be an absolute pond path, not "
                        f"{template_file!r}")
    time_column = fields.get("time_column", str, "timestamp")
    fields.done()
    return TemplateSpec(pattern, each, name, inline, template_file, time_column)


def reads(spec: TemplateSpec) -> list[str]:
    """The patterns the node reads: its input, and its template file."""
    return [spec.input] + ([spec.template_file] if spec.template_file else [])


def _environment():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True,
                               autoescape=False)
    env.filters["slug"] = slug
    # Pages are UTF-8: keep "O₂" readable in JSON (tojson still escapes <, >, & and ').
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "sort_keys": True}
    return env


def _compile(source: str, field: str):
    from jinja2 import TemplateSyntaxError

    try:
        return _environment().from_string(source)
    except TemplateSyntaxError as exc:
        raise SpecError(field, f"line {exc.lineno}: {exc.message}") from None


# ---------------------------------------------------------------------- the node


def build(fs: FS, spec: TemplateSpec, node_id: str) -> DynamicNode:
    """The directory of rendered outputs. Computes nothing."""
    return TemplateDirectory(fs, spec)


class TemplateDirectory(StaticDirectory):
    """One rendered file per match, per parameter, or one in all."""

    def __init__(self, fs: FS, spec: TemplateSpec):
        super().__init__(self._outputs, self._newest)
        self.fs = fs
        self.spec = spec

    def _matches(self) -> list[Input]:
        return resolve_inputs(self.fs, self.spec.input, files_only=False)

    def _newest(self) -> int:
        return max((input_mtime_ns(self.fs, i if isinstance(i, str) else i.node_id)
                    for i in self._sources(self._matches())), default=0)

    def _outputs(self) -> list[tuple[str, DynamicNode]]:
        spec = self.spec
        named: list[tuple[str, str, Input | str | None]]
        if spec.each == "match":
            named = [(substitute(spec.name, m.captures), m.path, m) for m in self._matches()]
        elif spec.each == "parameter":
            matches = self._matches()
            parameters = _parameters([self._context(m) for m in matches])
            named = [(substitute(spec.name, [p["slug"]]), p["label"], p["slug"])
                     for p in parameters]
        else:
            named = [(substitute(spec.name, []), "all matches", None)]
        return [(name, self._file(name, which))
                for name, which in unique_names(spec.input, spec.name, named)]

    def _file(self, name: str, which: Input | str | None) -> ComputedFile:
        def inputs() -> list[str | Input]:
            matches = [which] if isinstance(which, Input) else self._matches()
            return self._template_ids() + self._sources(matches)

        def write(sink: BinaryIO, ids: Sequence[str]) -> None:
            write_text(sink, self._render(name, which))

        return ComputedFile(self.fs, FACTORY, {**self.spec.settings(), "output": name},
                            inputs, write)

    # -- what an output reads

    def _template_ids(self) -> list[str]:
        if self.spec.template_file is None:
            return []
        try:
            return [self.fs.resolve(self.spec.template_file)]
        except FsError as exc:
            raise FsError(exc.errno or errno.ENOENT, f"spec.template_file: {exc}") from None

    def _sources(self, matches: Sequence[Input]) -> list[str | Input]:
        """What a context is made from: each matched file (with its path and captures) and
        the ``res=`` files beside it, or a matched directory's ``res=`` files (all its files
        when it has none). Other siblings do not count: a new version of one device's
        series must not re-render every page of its directory."""
        fs = self.fs
        sources: list[str | Input] = []
        for match in matches:
            if fs.kind(match.node_id) == FILE:
                sources.append(match)
                directory = fs.resolve(match.path.rsplit("/", 1)[0] or "/")
            else:
                directory = match.node_id
            files = [(name, i) for name, i in sorted(fs.listdir(directory).items())
                     if fs.kind(i) == FILE and i != match.node_id]
            found = [i for name, i in files if _RESOLUTION.fullmatch(name)]
            if fs.kind(match.node_id) != FILE and not found:
                found = [i for _, i in files]
            sources += found
        return sources

    def _context(self, match: Input) -> dict[str, Any]:
        fs = self.fs
        is_file = fs.kind(match.node_id) == FILE
        directory_path = (match.path.rsplit("/", 1)[0] or "/") if is_file else match.path
        directory = fs.resolve(directory_path)
        listing = fs.listdir(directory)
        found = resolutions(directory_path, listing)
        if is_file:
            schema = schema_of(fs, match.node_id)
        elif found:
            schema = schema_of(fs, listing[found[0]["file"]])
        else:
            files = [i for _, i in sorted(listing.items()) if fs.kind(i) == FILE]
            schema = pa.unify_schemas([schema_of(fs, i) for i in files],
                                      promote_options="permissive") if files else pa.schema([])
        name = match.path.rsplit("/", 1)[-1]
        described = describe_columns(schema, self.spec.time_column)
        for parameter in described["parameters"]:
            for instrument in parameter["instruments"]:
                instrument["label"] = instrument["instrument"] or name
        return {"path": match.path, "name": name, "captures": list(match.captures),
                "time_column": self.spec.time_column, **described, "resolutions": found}

    def _render(self, output: str, which: Input | str | None) -> str:
        matches = [self._context(m) for m in self._matches()]
        context: dict[str, Any] = {"matches": matches, "output": output}
        if isinstance(which, Input):
            match = next(m for m in matches if m["path"] == which.path)
            context.update(match)
            context["match"] = match
        elif isinstance(which, str):
            found = [p for p in _parameters(matches) if p["slug"] == which]
            if not found:
                raise FsError(errno.ENOENT, f"no parameter {which!r} in {self.spec.input}")
            context["parameter"] = found[0]
        if self.spec.template is not None:
            template = _compile(self.spec.template, "spec.template")
        else:
            source = read_all(self.fs, self._template_ids()[0])
            try:
                template = _compile(source.decode(), "spec.template_file")
            except (SpecError, UnicodeDecodeError) as exc:
                raise FsError(errno.EINVAL, f"{self.spec.template_file}: {exc}") from None
        try:
            return template.render(context)
        except Exception as exc:  # Jinja raises many types; all are the template's fault
            raise FsError(errno.EINVAL, f"spec.template: rendering {output}: "
                          f"{type(exc).__name__}: {exc}") from None


def _parameters(matches: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (parameter, unit) in any match, with one source per match and instrument."""
    found: dict[str, dict[str, Any]] = {}
    for match in matches:
        for parameter in match["parameters"]:
            entry = found.setdefault(parameter["slug"], {
                key: parameter[key] for key in ("name", "unit", "slug", "label")} | {
                "sources": []})
            for instrument in parameter["instruments"]:
                entry["sources"].append({
                    "match": match["path"], "name": match["name"],
                    "captures": match["captures"], "instrument": instrument["instrument"],
                    "label": instrument["instrument"] or match["name"],
                    "columns": instrument["columns"], "resolutions": match["resolutions"]})
    return sorted(found.values(), key=lambda p: p["slug"])


KIND = Kind(FACTORY, validate=check, build=build, reads=reads)
