"""The registry of kinds: one descriptor for computed and executable kinds, modules imported
only when their kind is used, dependencies from what kinds read and make, the one rule for
naming a computed directory's entries, and ``pond describe``'s account of a resource.

Ponds are real (a Delta table under ``tmp_path``); the data are the device samples shipped
in ``pondfs/demo``, checked against pyarrow's reading of the same files.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pondfs import collectors, pond, resources
from pondfs.dynamic import depends
from pondfs.kinds import KINDS, Kind
from pondfs.testing.fake_hydrovu import DEMO_DATA_DIR
from pondfs.tinyfs import FS, FsError, read_all

REPO = Path(__file__).resolve().parent.parent
DEVICES = ("NoyoCenterAT500_1", "NoyoCenterVulink_1")
#: /sites/a and /sites/b hold the same two file names; b's files hold half the rows.
SITES = ("a", "b")


def sample(device: str, site: str) -> bytes:
    """The demo sample of ``device`` as site ``site`` holds it (b: the first half)."""
    table = pq.read_table(DEMO_DATA_DIR / f"{device}.parquet")
    if site == "b":
        table = table.slice(0, table.num_rows // 2)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


@pytest.fixture
def location(tmp_path: Path) -> str:
    """A pond with /sites/<a|b>/<device>.parquet and /data (an empty directory)."""
    path = str(tmp_path / "pond")
    pond.init(path)
    with pond.open_fs(path, write=True) as fs:
        resources.makedirs(fs, "/data")
        for site in SITES:
            folder = resources.makedirs(fs, f"/sites/{site}")
            for device in DEVICES:
                node = fs.create(folder, f"{device}.parquet")
                fs.write_content(node, [sample(device, site)])
        fs.commit("sites")
    return path


def apply_yaml(location: str, tmp_path: Path, text: str, name: str = "r.yaml"
               ) -> tuple[list[resources.Applied], list[str]]:
    """``pond apply -f`` of ``text``, in process: what was applied and the warnings."""
    path = tmp_path / name
    path.write_text(text)
    loaded = resources.load([str(path)], KINDS)
    with pond.open_fs(location, write=True) as fs:
        ordered, warnings = depends.order(fs, loaded)
        applied = resources.apply(fs, ordered)
        KINDS.verify(fs, ordered)
        fs.commit("apply")
    return applied, warnings


def document(kind: str, name: str, path: str, spec: str) -> str:
    return (f"apiVersion: pondfs/v1\nkind: {kind}\nname: {name}\npath: {path}\nspec:\n"
            + "".join(f"  {line}\n" for line in spec.strip().splitlines()))


HYDROVU = document("HydroVu", "hydrovu", "/etc/hydrovu", """
client_id: ${env:HV_ID}
client_secret: ${env:HV_SECRET}
output: /hydrovu
""")


def cat(fs: FS, path: str) -> bytes:
    return read_all(fs, fs.resolve(path))


# ---------------------------------------------------------------------- the registry


def test_every_kind_is_one_descriptor_of_its_sort() -> None:
    assert KINDS.names() == ["HydroVu", "backup", "glob", "pipeline", "sql-derived",
                             "template", "temporal-reduce", "timeseries-join"]
    for name in KINDS.names():
        kind = KINDS.get(name)
        assert kind.name == name
        assert (kind.run is not None) == KINDS.executable(name)
        assert kind.declared == KINDS.declared(name)
        assert (kind.build is None) == (KINDS.executable(name) or KINDS.declared(name))
    with pytest.raises(TypeError, match="one of them"):
        Kind("both", validate=dict, build=lambda fs, s, n: None, run=lambda *a: None)
    with pytest.raises(TypeError, match="makes only its own node"):
        Kind("computed", validate=dict, build=lambda fs, s, n: None, makes=lambda s: ["/x"])


def test_an_unknown_kind_is_refused_naming_the_known_ones(location: str) -> None:
    with pond.open_fs(location, write=True) as fs, pytest.raises(FsError) as caught:
        resources.make_node(fs, "nope", "/x", b"{}")
    assert str(caught.value) == ("unknown kind 'nope' (known: HydroVu, backup, glob, "
                                 "pipeline, sql-derived, template, temporal-reduce, "
                                 "timeseries-join)")


def test_a_kinds_module_is_imported_only_when_the_kind_is_used(location: str,
                                                               tmp_path: Path) -> None:
    apply_yaml(location, tmp_path, HYDROVU + "---\n" + document(
        "glob", "all", "/all", "in_pattern: /sites/*/*.parquet\nout_pattern: $0-$1.parquet"
    ) + "---\n" + document("sql-derived", "count", "/count", """
source: /sites/a/*.parquet
query: SELECT count(*) AS n FROM source
"""))
    # A fresh process: what opening the pond, listing, finding collectors and listing the
    # glob import, in that order.
    script = f"""
import json, sys
from pondfs import collectors, pond
watched = ("pondfs.dynamic.", "pondfs.collectors.", "datafusion", "requests", "jinja2")
def loaded():
    return sorted(m for m in sys.modules if m.startswith(watched))
seen = []
with pond.open_fs({location!r}) as fs:
    fs.listdir(fs.resolve("/"))
    seen.append(loaded())
    assert collectors.find(fs) == ["/etc/hydrovu"]
    seen.append(loaded())
    fs.listdir(fs.resolve("/all"))
    seen.append(loaded())
print(json.dumps(seen))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=REPO, check=True)
    listed, found, globbed = json.loads(done.stdout)
    assert listed == []
    assert found == []  # collectors are told apart by name: nothing imported
    assert globbed == ["pondfs.dynamic.computed", "pondfs.dynamic.globbed"]


# ---------------------------------------------------------------------- what kinds read and make


def test_a_pattern_under_a_collectors_output_that_matches_nothing_warns(
        location: str, tmp_path: Path) -> None:
    glob = document("glob", "by-site", "/by-site",
                    "in_pattern: /hydrovu/devices/*/*.series\nout_pattern: $1.series")
    applied, warnings = apply_yaml(location, tmp_path, HYDROVU + "---\n" + glob)
    assert [a.resource.kind for a in applied] == ["HydroVu", "glob"]  # the collector first
    source = f"{tmp_path / 'r.yaml'}: document 2 (glob by-site at /by-site)"
    assert warnings == [f"{source}: input /hydrovu/devices/*/*.series matches nothing yet"]
    # Like a pattern under a directory that is simply empty.
    empty = document("glob", "empty", "/empty", "in_pattern: /data/*")
    _, warnings = apply_yaml(location, tmp_path, empty, "empty.yaml")
    assert warnings == [f"{tmp_path / 'empty.yaml'}: document 1 (glob empty at /empty): "
                        "input /data/* matches nothing yet"]
    # The collector is in the pond now: a resource applied alone reads what it makes, and
    # still hears that nothing is there yet.
    again = glob.replace("by-site", "by-site-2")
    _, warnings = apply_yaml(location, tmp_path, again, "again.yaml")
    assert warnings == [f"{tmp_path / 'again.yaml'}: document 1 (glob by-site-2 at "
                        "/by-site-2): input /hydrovu/devices/*/*.series matches nothing yet"]
    with pond.open_fs(location, write=True) as fs:
        folder = resources.makedirs(fs, "/hydrovu/devices/1")
        node = fs.create(folder, "AT500_1.series", fmt="series")
        fs.append_series(node, pq.read_table(DEMO_DATA_DIR / "NoyoCenterAT500_1.parquet"))
        fs.commit("data")
    _, warnings = apply_yaml(location, tmp_path, again.replace("$1", "x-$1"), "data.yaml")
    assert warnings == []
    nowhere = document("glob", "nowhere", "/nowhere", "in_pattern: /elsewhere/*")
    with pytest.raises(FsError, match=r"input /elsewhere/\*: /elsewhere does not exist in "
                                      "the pond and no resource makes it"):
        apply_yaml(location, tmp_path, nowhere, "nowhere.yaml")


def test_describe_says_what_a_resource_reads_and_makes_and_applies_back(
        location: str, tmp_path: Path) -> None:
    glob = document("glob", "by-site", "/by-site", "in_pattern: /hydrovu/devices/*/*.series")
    apply_yaml(location, tmp_path, HYDROVU + "---\n" + glob)
    with pond.open_fs(location) as fs:
        collector = resources.document(fs, "/etc/hydrovu", KINDS)
        computed = resources.document(fs, "/by-site", KINDS)
    assert collector.endswith("\n# makes /hydrovu when run (pond run /etc/hydrovu)\n")
    assert "# reads" not in collector
    assert computed.endswith("\n# reads /hydrovu/devices/*/*.series\n")
    assert "# makes" not in computed
    applied, _ = apply_yaml(location, tmp_path, collector + "---\n" + computed, "back.yaml")
    assert [a.action for a in applied] == ["unchanged", "unchanged"]


# ---------------------------------------------------------------------- naming outputs

NAMING = {
    # kind: (spec, what the kept entry reads as: a file, or a path inside the entry)
    "glob": ("in_pattern: /sites/*/*.parquet\nout_pattern: $1.parquet", ""),
    "temporal-reduce": ("in_pattern: /sites/*/*.parquet\nout_pattern: $1\nresolutions: [1d]",
                        "/res=1d.parquet"),
    "sql-derived": ("source: /sites/*/*.parquet\nname: $1.parquet\n"
                    "query: SELECT count(*) AS n FROM source", ""),
    "template": ("input: /sites/*/*.parquet\nname: $1.md\ntemplate: '{{ path }}'", ""),
}


@pytest.mark.parametrize("kind", sorted(NAMING))
def test_a_name_two_inputs_share_goes_to_the_first_with_a_warning(
        kind: str, location: str, tmp_path: Path, expect_warnings) -> None:
    spec, inside = NAMING[kind]
    apply_yaml(location, tmp_path, document(kind, "out", "/out", spec))
    with pond.open_fs(location) as fs, expect_warnings(
            r"^/sites/\*/\*\.parquet: /sites/a/(\w+)\.parquet and /sites/b/\1\.parquet are "
            r"both named '\1(\.parquet|\.md)?' by '\$1(\.parquet|\.md)?'; keeping the first",
            count=None) as messages:
        names = sorted(fs.listdir(fs.resolve("/out")))
        suffix = {"glob": ".parquet", "sql-derived": ".parquet", "template": ".md"}.get(kind, "")
        assert names == sorted(d + suffix for d in DEVICES)
        for device in DEVICES:
            got = cat(fs, f"/out/{device}{suffix}{inside}")
            first = pq.read_table(io.BytesIO(sample(device, "a")))
            if kind == "glob":
                assert got == sample(device, "a")
            elif kind == "template":
                assert got.decode() == f"/sites/a/{device}.parquet"
            elif kind == "sql-derived":
                assert pq.read_table(io.BytesIO(got)).column("n").to_pylist() == [
                    first.num_rows]
            else:  # one row a day: the days of the first site's rows
                days = {t // 86_400 for t in first.column("timestamp").to_pylist()
                        if t >= 946_684_800}
                assert pq.read_table(io.BytesIO(got)).num_rows == len(days)
    assert len({m.split(" and ")[0] for m in messages}) == len(DEVICES)


def test_a_name_that_cannot_name_a_file_is_left_out_with_a_warning(
        location: str, tmp_path: Path, expect_warnings) -> None:
    with pond.open_fs(location, write=True) as fs:
        folder = resources.makedirs(fs, "/e")
        for name in ("x", "xy"):
            fs.write_content(fs.create(folder, name), [name.encode()])
        fs.commit("e")
    apply_yaml(location, tmp_path, document("glob", "e", "/e-links", "in_pattern: /e/x*"))
    with pond.open_fs(location) as fs, expect_warnings(
            r"^/e/x\*: /e/x: the name '\$0' makes is not usable, so it is left out: "
            r"invalid name ''", count=None):
        assert fs.listdir(fs.resolve("/e-links")).keys() == {"y"}
        assert cat(fs, "/e-links/y") == b"xy"


def test_collectors_run_through_the_registry(location: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HV_ID", raising=False)
    apply_yaml(location, tmp_path, HYDROVU)
    with pond.open_fs(location, write=True) as fs:
        report = collectors.run(fs, "/etc/hydrovu")  # HV_ID is not set: the run says so
        assert report.failures == ["/etc/hydrovu: spec.client_id: environment variable "
                                   "HV_ID is not set"]
        with pytest.raises(FsError, match="/sites is not a collector"):
            collectors.run(fs, "/sites")
