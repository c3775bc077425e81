"""Glob patterns: matching, captures, malformed patterns, templates and tree walks."""

from __future__ import annotations

import doctest
import re
from collections.abc import Iterator

import pytest

from pondfs.tinyfs import GlobError, GlobPattern, glob, substitute

NO = None  # the path does not match

MATCHES = [
    # '*': within one component, may be empty after a literal
    ("/a/*", "/a/b.csv", ("b.csv",)),
    ("/a/*", "/a/b/c", NO),
    ("/a/*", "/a", NO),
    ("*.csv", "flow.csv", ("flow",)),
    ("*.csv", "flow.csv.bak", NO),
    ("x*", "x", ("",)),
    ("*", "", NO),
    # '?': exactly one character
    ("?.txt", "a.txt", ("a",)),
    ("?.txt", "ab.txt", NO),
    ("?.txt", ".txt", NO),
    # classes: ranges, negation, a leading ']', a literal '-', escapes
    ("file[0-9][0-9]", "file42", ("4", "2")),
    ("file[0-9]", "filex", NO),
    ("[a-cx]1", "x1", ("x",)),
    ("[!a-c]1", "d1", ("d",)),
    ("[!a-c]1", "b1", NO),
    ("[]]", "]", ("]",)),
    ("[!]]", "]", NO),
    ("[!]]", "a", ("a",)),
    ("[a-]", "-", ("-",)),
    ("[\\]x]", "]", ("]",)),
    ("[^]", "^", ("^",)),
    ("a[ -~]b", "a/b", NO),
    # braces: alternatives, with wildcards inside, empty alternatives
    ("{temp,ph}.series", "ph.series", ("ph",)),
    ("{temp,ph}.series", "do.series", NO),
    ("{x*,y?}", "xyz", ("xyz",)),
    ("{x*,y?}", "yz", ("yz",)),
    ("{x*,y?}", "yzz", NO),
    ("{,pre}fix", "fix", ("",)),
    ("{,pre}fix", "prefix", ("pre",)),
    ("{a\\,b,c}", "a,b", ("a,b",)),
    ("{[0-9]*,none}", "2024", ("2024",)),
    ("{[0-9]*,none}", "x2024", NO),
    # escapes make wildcards literal
    ("\\*", "*", ()),
    ("\\*", "a", NO),
    ("a\\?b", "a?b", ()),
    ("\\[x]", "[x]", ()),
    ("\\{a,b}", "{a,b}", ()),
    ("\\**", "*.csv", (".csv",)),
    # '**': zero, one or many components, captured without slashes
    ("/a/**/x", "/a/x", ("",)),
    ("/a/**/x", "/a/b/x", ("b",)),
    ("/a/**/x", "/a/b/c/x", ("b/c",)),
    ("/a/**/x", "/a/b/c", NO),
    ("/a/**", "/a", ("",)),
    ("/a/**", "/a/b/c", ("b/c",)),
    ("/**", "/", ("",)),
    ("**", "", ("",)),
    ("**", "a/b", ("a/b",)),
    ("**/x", "x", ("",)),
    ("**/x", "a/x", ("a",)),
    ("**/*.csv", "d/e/f.csv", ("d/e", "f")),
    ("a/**/**/b", "a/1/2/b", ("1/2", "")),
    # captures are numbered across components in pattern order
    ("/{a,b}/*/site-??.[ct]sv", "/b/x/site-07.csv", ("b", "x", "0", "7", "c")),
    ("/hydrovu/**/*-{temp,ph}.series", "/hydrovu/2024/s1-ph.series", ("2024", "s1", "ph")),
    # hidden names need a literal leading '.'
    ("*", ".git", NO),
    (".*", ".git", ("git",)),
    ("\\.*", ".git", ("git",)),
    ("?git", ".git", NO),
    ("[.]git", ".git", NO),
    ("{,a}*", ".x", NO),
    ("{.a,b}", ".a", (".a",)),
    ("{a,*}", ".a", NO),
    ("*.*", "a.b", ("a", "b")),
    ("**/x", ".h/x", NO),
    ("a/**", "a/b/.h", NO),
    ("a/**/.h", "a/b/.h", ("b",)),
    # absolute only against absolute; repeated and trailing slashes are ignored
    ("/a", "a", NO),
    ("a", "/a", NO),
    ("/a/*", "//a///b/", ("b",)),
    ("a//*/", "a/b", ("b",)),
    ("/", "/", ()),
]


@pytest.mark.parametrize(("pattern", "path", "captures"), MATCHES)
def test_match(pattern: str, path: str, captures: tuple[str, ...] | None) -> None:
    assert GlobPattern(pattern).match(path) == captures


@pytest.mark.parametrize(
    ("pattern", "absolute", "has_wildcards"),
    [
        ("/a/b", True, False),
        ("a/b", False, False),
        ("a\\*", False, False),
        ("/a/*", True, True),
        ("**", False, True),
        ("{a}", False, True),
        ("/", True, False),
    ],
)
def test_attributes(pattern: str, absolute: bool, has_wildcards: bool) -> None:
    p = GlobPattern(pattern)
    assert (p.pattern, p.absolute, p.has_wildcards) == (pattern, absolute, has_wildcards)


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("/a/[b", "unclosed '['"),
        ("[]", "unclosed '['"),
        ("[a\\", "unclosed '['"),
        ("/a/{b,c", "unclosed '{'"),
        ("a**b", "'**' must be a whole path component"),
        ("**b", "'**' must be a whole path component"),
        ("a/***", "'**' must be a whole path component"),
        ("{a,{b}}", "nested '{'"),
        ("{}", "empty '{}'"),
        ("{a/b}", "'/' inside '{...}'"),
        ("[a/b]", "'/' inside '[...]'"),
        ("[z-a]", "bad range 'z-a' in '[...]'"),
        ("a\\", "trailing '\\'"),
        ("a\\/b", "'/' cannot be escaped"),
        ("", "empty pattern"),
    ],
)
def test_bad_pattern(pattern: str, problem: str) -> None:
    with pytest.raises(GlobError) as caught:
        GlobPattern(pattern)
    assert str(caught.value) == f"bad glob '{pattern}': {problem}"
    assert (caught.value.text, caught.value.problem) == (pattern, problem)
    assert isinstance(caught.value, ValueError)


ELEVEN = [f"c{i}" for i in range(11)]


@pytest.mark.parametrize(
    ("template", "captures", "expected"),
    [
        ("$0-$1", ["a", "b"], "a-b"),
        ("${0}x", ["a"], "ax"),
        ("$1/$0", ["a", "b"], "b/a"),
        ("${10}", ELEVEN, "c10"),
        ("$10", ELEVEN, "c10"),
        ("$10", ["a", "b"], "b0"),
        ("$$0 $$", ["a"], "$0 $"),
        ("plain", [], "plain"),
        ("$0", [""], ""),
    ],
)
def test_substitute(template: str, captures: list[str], expected: str) -> None:
    assert substitute(template, captures) == expected


@pytest.mark.parametrize(
    ("template", "captures", "problem"),
    [
        ("$2", ["a", "b"], "$2 refers to capture 2, but there are 2"),
        ("x${10}", ["a"], "${10} refers to capture 10, but there are 1"),
        ("$0", [], "$0 refers to capture 0, but there are 0"),
        ("$x", ["a"], "'$' must be followed by '$', a digit or '{n}'"),
        ("cost$", ["a"], "'$' must be followed by '$', a digit or '{n}'"),
        ("${1", ["a", "b"], "'$' must be followed by '$', a digit or '{n}'"),
        ("${}", ["a"], "'$' must be followed by '$', a digit or '{n}'"),
    ],
)
def test_substitute_errors(template: str, captures: list[str], problem: str) -> None:
    with pytest.raises(GlobError) as caught:
        substitute(template, captures)
    assert str(caught.value) == f"bad template '{template}': {problem}"


def test_captures_feed_templates() -> None:
    captures = GlobPattern("/hydrovu/*/**/{temp,ph}.series").match("/hydrovu/s1/2024/06/ph.series")
    assert captures == ("s1", "2024/06", "ph")
    assert substitute("/by-param/$2/$0/$1", captures) == "/by-param/ph/s1/2024/06"


def test_docstring_examples() -> None:
    results = doctest.testmod(glob)
    assert results.attempted >= 4
    assert results.failed == 0


# A tree for walks: a dict is a directory, a str is a file. Listings come out unsorted.
TREE = {
    "hydrovu": {
        "site-b": {"temp.series": "t", "notes.txt": "n", ".hidden.series": "h"},
        "site-a": {
            "temp.series": "t",
            "raw": {"old.series": "o", "deep": {"older.series": "o"}},
            "ph.series": "p",
        },
    },
    "laketech": {"x.series": "x"},
    ".git": {"config.series": "c"},
    "README": "r",
    "hydrovu.series": "s",
}


class Calls:
    """The tree callbacks for ``walk``, recording which directories they were asked about."""

    def __init__(self) -> None:
        self.listed: list[object] = []
        self.looked_up: list[str] = []

    def children(self, node: dict) -> Iterator[tuple[str, object]]:
        self.listed.append(node)
        return iter(reversed(node.items()))

    @staticmethod
    def is_dir(node: object) -> bool:
        return isinstance(node, dict)

    def child(self, node: dict, name: str) -> object | None:
        self.looked_up.append(name)
        return node.get(name)


def walk(pattern: str, root: object = TREE, *, lookups: bool = True) -> list[tuple[str, tuple]]:
    calls = Calls()
    found = GlobPattern(pattern).walk(
        root, calls.children, calls.is_dir, calls.child if lookups else None
    )
    return [(path, captures) for path, _node, captures in found]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (
            "/hydrovu/*/*.series",
            [
                ("/hydrovu/site-a/ph.series", ("site-a", "ph")),
                ("/hydrovu/site-a/temp.series", ("site-a", "temp")),
                ("/hydrovu/site-b/temp.series", ("site-b", "temp")),
            ],
        ),
        (
            "/**/*.series",
            [
                ("/hydrovu/site-a/ph.series", ("hydrovu/site-a", "ph")),
                ("/hydrovu/site-a/raw/deep/older.series", ("hydrovu/site-a/raw/deep", "older")),
                ("/hydrovu/site-a/raw/old.series", ("hydrovu/site-a/raw", "old")),
                ("/hydrovu/site-a/temp.series", ("hydrovu/site-a", "temp")),
                ("/hydrovu/site-b/temp.series", ("hydrovu/site-b", "temp")),
                ("/hydrovu.series", ("", "hydrovu")),
                ("/laketech/x.series", ("laketech", "x")),
            ],
        ),
        (
            "/hydrovu/site-a/**",
            [
                ("/hydrovu/site-a", ("",)),
                ("/hydrovu/site-a/ph.series", ("ph.series",)),
                ("/hydrovu/site-a/raw", ("raw",)),
                ("/hydrovu/site-a/raw/deep", ("raw/deep",)),
                ("/hydrovu/site-a/raw/deep/older.series", ("raw/deep/older.series",)),
                ("/hydrovu/site-a/raw/old.series", ("raw/old.series",)),
                ("/hydrovu/site-a/temp.series", ("temp.series",)),
            ],
        ),
        (
            "/.*/*",
            [("/.git/config.series", ("git", "config.series"))],
        ),
        (
            "/hydrovu/site-b/.*",
            [("/hydrovu/site-b/.hidden.series", ("hidden.series",))],
        ),
        ("/README/**", [("/README", ("",))]),
        ("/README/*", []),
        ("/hydrovu/site-a/ph.series", [("/hydrovu/site-a/ph.series", ())]),
        ("/hydrovu/site-c/ph.series", []),
        ("/", [("/", ())]),
        ("/{laketech,hydrovu}", [("/hydrovu", ("hydrovu",)), ("/laketech", ("laketech",))]),
    ],
)
@pytest.mark.parametrize("lookups", [True, False], ids=["child", "children-only"])
def test_walk(pattern: str, expected: list, lookups: bool) -> None:
    assert walk(pattern, lookups=lookups) == expected


def test_walk_relative_pattern_from_a_subdirectory() -> None:
    assert walk("raw/**/*.series", TREE["hydrovu"]["site-a"]) == [
        ("raw/deep/older.series", ("deep", "older")),
        ("raw/old.series", ("", "old")),
    ]
    assert walk("**", TREE["hydrovu"]["site-b"]) == [
        ("", ("",)),
        ("notes.txt", ("notes.txt",)),
        ("temp.series", ("temp.series",)),
    ]


def test_walk_yields_each_path_once() -> None:
    paths = [path for path, _ in walk("/**/**")]
    assert len(paths) == len(set(paths)) == 16


def all_paths(node: object, prefix: str = "") -> Iterator[str]:
    yield prefix or "/"
    if isinstance(node, dict):
        for name, child in node.items():
            yield from all_paths(child, f"{prefix}/{name}")


@pytest.mark.parametrize(
    "pattern",
    ["/**", "/**/*.series", "/*/**/*", "/hydrovu/{site-?,x}/**", "/**/raw/**", "/.*/**", "/*"],
)
def test_walk_agrees_with_match(pattern: str) -> None:
    p = GlobPattern(pattern)
    expected = sorted(
        ((path, captures) for path in all_paths(TREE) if (captures := p.match(path)) is not None),
        key=lambda found: found[0].split("/"),
    )
    assert walk(pattern) == expected


def test_literal_components_are_looked_up_not_listed() -> None:
    calls = Calls()
    site_a = TREE["hydrovu"]["site-a"]
    found = list(
        GlobPattern("/hydrovu/site-a/ph.series").walk(
            TREE, calls.children, calls.is_dir, calls.child
        )
    )
    assert found == [("/hydrovu/site-a/ph.series", "p", ())]
    assert calls.listed == []
    assert calls.looked_up == ["hydrovu", "site-a", "ph.series"]

    calls = Calls()
    list(GlobPattern("/hydrovu/*/raw/*").walk(TREE, calls.children, calls.is_dir, calls.child))
    assert calls.listed == [TREE["hydrovu"], site_a["raw"]]
    assert calls.looked_up == ["hydrovu", "raw", "raw"]


def test_walk_stops_at_files() -> None:
    asked: list[object] = []

    def is_dir(node: object) -> bool:
        asked.append(node)
        return isinstance(node, dict)

    def children(node: object) -> list[tuple[str, object]]:
        assert isinstance(node, dict), "listed a file"
        return list(node.items())

    found = list(GlobPattern("/laketech/**").walk(TREE, children, is_dir))
    assert [path for path, _, _ in found] == ["/laketech", "/laketech/x.series"]
    assert asked == [TREE, TREE["laketech"], "x"]


def test_walk_a_large_directory_compiles_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"f{i:05}.{'csv' if i % 2 else 'txt'}" for i in range(10_000)]
    tree = {"big": {name: name for name in reversed(names)}}
    pattern = GlobPattern("/big/f*.csv")

    def no_compile(*args: object, **kwargs: object) -> re.Pattern[str]:
        raise AssertionError("walk compiled a regex")

    monkeypatch.setattr(re, "compile", no_compile)
    found = list(pattern.walk(tree, lambda d: d.items(), lambda n: isinstance(n, dict), dict.get))
    assert [path for path, _, _ in found] == [f"/big/{n}" for n in names if n.endswith(".csv")]
    assert found[0][2] == ("00001",)
