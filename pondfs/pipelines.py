"""Pipelines: ``kind: pipeline`` resources, the steps ``pond run PIPELINE`` runs in order::

    apiVersion: pondfs/v1
    kind: pipeline
    name: nightly
    spec:
      steps:
        - run: /etc/hydrovu          # a collector (or `all`: every collector)
        - apply: /etc/derived.yaml   # a file in the pond holding resources
          when: changed              # only if an earlier step committed something
        - backup: /etc/offsite       # a declared backup target (or `all`)
          when: changed
        - site: /var/www/noyo        # build the site into this host directory
          when: changed
        - maintain: 7d               # pond maintain, keeping unreferenced data this long
          when: changed              #   (`maintain: true`: the default, 7 days)

Each step is the ``pond`` command of the same name, run in this process, so it records its
own run as that command does (:mod:`pondfs.runs`); ``when`` is ``always`` (the default) or
``changed``. A step that fails skips the steps after it. The pipeline's own record (every
step and its result) is a transaction of its own.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .kinds import Kind
from .resources import Fields, SpecError
from .runs import PIPELINE, record

log = logging.getLogger(__name__)

ACTIONS = ("run", "apply", "backup", "site", "maintain")
WHEN = ("always", "changed")
#: Hours of unreferenced data ``maintain: true`` keeps (as pond maintain's default).
DEFAULT_RETENTION_HOURS = 168.0


@dataclass(frozen=True)
class Step:
    """One step: its ``action`` (one of :data:`ACTIONS`), what it acts on, and ``when``."""

    action: str
    target: str
    when: str = "always"

    def describe(self) -> str:
        """``run /etc/hydrovu``."""
        return f"{self.action} {self.target}"


def _step(item: Any, where: str) -> Step:
    fields = Fields(item, where)
    given = [a for a in ACTIONS if a in item]
    if len(given) != 1:
        raise SpecError(where, f"must have one of {', '.join(ACTIONS)}"
                        + (f", not {len(given)}" if given else ""))
    action = given[0]
    when = fields.get("when", str, "always")
    if when not in WHEN:
        raise SpecError(fields.field("when"), f"must be always or changed, not {when!r}")
    if action == "maintain":
        value = fields.get(action, (bool, str, int, float))
        if value is True:
            target = f"{DEFAULT_RETENTION_HOURS:g}h"
        else:
            seconds = fields.duration(action, None)
            assert seconds is not None
            target = f"{seconds / 3600:g}h"
    else:
        target = fields.get(action, str)
        if action == "apply" and not target.startswith("/"):
            raise SpecError(fields.field(action), f"must be an absolute pond path, not "
                            f"{target!r}")
        if action in ("run", "backup") and target != "all" and not target.startswith("/"):
            raise SpecError(fields.field(action), f"must be an absolute pond path or all, "
                            f"not {target!r}")
    fields.done()
    return Step(action, target, when)


def _validate(spec: dict) -> tuple[Step, ...]:
    fields = Fields(spec, "spec")
    items = fields.get("steps", list)
    if not items:
        raise SpecError(fields.field("steps"), "must list at least one step")
    steps = tuple(_step(item, f"spec.steps[{i}]") for i, item in enumerate(items))
    fields.done()
    return steps


KIND = Kind("pipeline", _validate, declared=True)


@dataclass
class StepResult:
    """How a step went: ``ok``, ``failed`` or ``skipped``, and its last line of output."""

    step: Step
    result: str
    line: str = ""
    committed: bool = False


def run(location: str, path: str, steps: tuple[Step, ...], *, lock_wait: float,
        changes_since: Callable[[int], bool], last_txn: Callable[[], int],
        say: Callable[[str], None]) -> tuple[list[StepResult], dict[str, Any]]:
    """Run the pipeline at ``path`` of the pond at ``location``: each step in order, saying a
    line per step; the results and the pipeline's record (the caller commits it).

    ``last_txn()`` is the pond's newest transaction, ``changes_since(txn)`` whether a
    transaction after ``txn`` changed the pond (records alone change nothing).
    """
    started = time.time_ns()
    start_txn = last_txn()
    results: list[StepResult] = []
    failed = False
    for number, step in enumerate(steps, start=1):
        label = f"step {number}/{len(steps)} {step.describe()}"
        if failed:
            results.append(StepResult(step, "skipped", "an earlier step failed"))
        elif step.when == "changed" and not changes_since(start_txn):
            results.append(StepResult(step, "skipped", "nothing changed"))
        else:
            before = last_txn()
            code, line = _run_step(location, step, lock_wait)
            failed = code != 0
            results.append(StepResult(step, "failed" if failed else "ok", line,
                                      changes_since(before)))
        done = results[-1]
        say(f"{label}: {done.result}" + (f": {done.line}" if done.line else ""))
    error = next((f"{r.step.describe()}: {r.line}" for r in results if r.result == "failed"),
                 None)
    rec = record(PIPELINE, path, started_ns=started, error=error,
                 steps=[{"step": r.step.describe(), "result": r.result, "line": r.line}
                        for r in results])
    return results, rec


def _run_step(location: str, step: Step, lock_wait: float) -> tuple[int, str]:
    """Run one step as its ``pond`` command; its exit status and last line of output."""
    from . import cli

    common = ["--pond", location, "--wait", str(lock_wait)]
    if step.action == "apply":
        return _apply(location, step.target, common)
    argv = {
        "run": ["run", "--all"] if step.target == "all" else ["run", step.target],
        "backup": ["backup", "push"] + ([] if step.target == "all" else ["--to", step.target]),
        "site": ["site", "build", step.target],
        "maintain": ["maintain", "--retention-hours", step.target.rstrip("h")],
    }[step.action]
    return _capture(cli.run, common + argv)


def _apply(location: str, path: str, common: list[str]) -> tuple[int, str]:
    """``pond apply`` of the resources file at ``path`` in the pond."""
    from . import cli, pond
    from .tinyfs import read_all

    with pond.open_fs(location) as fs:
        content = read_all(fs, fs.resolve(path))
    with tempfile.NamedTemporaryFile(suffix=".yaml", delete=False) as f:
        f.write(content)
    try:
        code, line = _capture(cli.run, common + ["apply", "-f", f.name])
    finally:
        os.unlink(f.name)
    return code, line.replace(f.name, path)


def _capture(command: Callable[[list[str]], int], argv: list[str]) -> tuple[int, str]:
    """Run ``command(argv)`` with its output captured: its status and the last line it
    printed (its error line, if it failed)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = command(argv)
        except SystemExit as exc:  # argparse refusing a malformed step
            code = int(exc.code or 0)
    lines = (err.getvalue() if code else out.getvalue()).strip().splitlines()
    log.debug("%s: exit %d: %s", " ".join(argv), code, out.getvalue() + err.getvalue())
    return code, lines[-1] if lines else ""
