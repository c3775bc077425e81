"""Glob patterns over slash-separated paths, with numbered captures.

A pattern is split at ``/`` into components; each component matches one name, except a
component that is exactly ``**``, which matches zero or more names. Pure text: nothing here
touches a filesystem; :meth:`GlobPattern.walk` asks its caller for a node's children.

Syntax, within one component:

``*``
    any run of characters (never ``/``)
``?``
    one character
``[abc]``, ``[a-z]``, ``[!a-z]``
    one character from (or, with ``!``, not from) a class; a ``]`` right after ``[`` or
    ``[!`` is a literal ``]``, a ``-`` first or last is a literal ``-``
``{csv,parquet,t*}``
    one of the comma-separated alternatives; an alternative may hold ``*``, ``?``, classes
    and escapes, but not another ``{`` or a ``/``
``\\c``
    the character ``c`` itself (``\\*`` is a star, ``\\,`` a comma inside braces)

``**`` must be a whole component: ``a**b`` and ``***`` are errors rather than guesses.
Empty components (``a//b``, a trailing ``/``) are ignored.

Every wildcard (``*``, ``**``, ``?``, ``[...]``, ``{...}``) captures the text it matched,
numbered from 0 in the order the wildcards appear in the pattern; the wildcards inside a
``{...}`` are part of its one capture. A ``**`` captures the sub-path it matched without
leading or trailing slash, ``""`` when it matched no component. :func:`substitute` puts the
captures into a template as ``$0``, ``$1``, ..., ``${10}``.

Hidden names, like in shells: a name that starts with ``.`` is matched only by a component
that starts with a literal ``.`` (``.*`` matches ``.git``; ``*``, ``?*`` and ``[.]*`` do not),
and ``**`` never matches a hidden name. A ``{...}`` opening a component may match a hidden
name through an alternative that starts with a literal ``.`` (``{.git,src}``).

>>> captures = GlobPattern("/hydrovu/*/{temp,ph}-*.series").match("/hydrovu/site-a/ph-2024.series")
>>> captures
('site-a', 'ph', '2024')
>>> substitute("/by-param/$1/$0-$2.series", captures)
'/by-param/ph/site-a-2024.series'
>>> GlobPattern("/data/**/*.csv").match("/data/2024/06/flow.csv")
('2024/06', 'flow')
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from typing import NamedTuple, TypeVar

N = TypeVar("N")

# Put first in a component that starts with a wildcard: the name is not empty and its first
# character, which the wildcard would match, is not a hidden name's leading dot.
_NOT_HIDDEN = r"(?=[^./])"
# What '**' matches: one or more non-hidden names joined by '/'.
_SUBPATH = r"[^./][^/]*(?:/[^./][^/]*)*"
_SLASHES = re.compile(r"/+")
_REFERENCE = re.compile(r"\$(?:(\$)|(\d)|\{(\d+)\}|)")


class GlobError(ValueError):
    """A pattern or template is malformed; the message names it and the problem.

    >>> str(GlobError("/a/[b", "unclosed '['"))
    "bad glob '/a/[b': unclosed '['"
    """

    def __init__(self, text: str, problem: str, *, what: str = "glob") -> None:
        super().__init__(f"bad {what} '{text}': {problem}")
        self.text = text
        self.problem = problem


class _Token(NamedTuple):
    """One piece of a component: a regex, and the character it stands for when it is a
    literal ("" for a wildcard)."""

    regex: str
    literal: str


_DOUBLE_STAR_TOKEN = _Token("**", "")


class _DoubleStar:
    """The component ``**``."""

    def __repr__(self) -> str:
        return "**"


_DOUBLE_STAR = _DoubleStar()

# A parsed component: a literal name, '**', or the regex a name must fully match.
_Component = str | _DoubleStar | re.Pattern[str]


class _Parser:
    """Turns a pattern into components; one instance per pattern."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.pos = 0

    def error(self, problem: str) -> GlobError:
        return GlobError(self.pattern, problem)

    def peek(self, ahead: int = 0) -> str | None:
        at = self.pos + ahead
        return self.pattern[at] if at < len(self.pattern) else None

    def take(self) -> str | None:
        c = self.peek()
        self.pos += 1
        return c

    def components(self) -> list[_Component]:
        parsed: list[_Component] = []
        tokens: list[_Token] = []
        while (c := self.take()) is not None:
            if c == "/":
                if tokens:
                    parsed.append(self.component(tokens))
                tokens = []
            else:
                tokens.append(self.token(c, at_start=not tokens))
        if tokens:
            parsed.append(self.component(tokens))
        return parsed

    def component(self, tokens: list[_Token]) -> _Component:
        if tokens == [_DOUBLE_STAR_TOKEN]:
            return _DOUBLE_STAR
        if _DOUBLE_STAR_TOKEN in tokens:
            raise self.error("'**' must be a whole path component")
        if all(t.literal for t in tokens):
            return "".join(t.literal for t in tokens)
        return re.compile("".join(t.regex for t in tokens))

    def token(self, c: str, *, at_start: bool) -> _Token:
        """The token that starts with ``c`` (already taken)."""
        guard = _NOT_HIDDEN if at_start else ""
        if c == "\\":
            literal = self.escaped()
            return _Token(re.escape(literal), literal)
        if c == "*":
            if self.peek() != "*":
                return _Token(f"{guard}([^/]*)", "")
            self.pos += 1
            if self.peek() == "*":
                raise self.error("'**' must be a whole path component")
            return _DOUBLE_STAR_TOKEN
        if c == "?":
            return _Token(f"{guard}([^/])", "")
        if c == "[":
            return _Token(f"{guard}({self.char_class()})", "")
        if c == "{":
            return _Token(f"({self.braces(guard)})", "")
        return _Token(re.escape(c), c)

    def escaped(self) -> str:
        """The character after a backslash (already taken)."""
        c = self.take()
        if c is None:
            raise self.error("trailing '\\'")
        if c == "/":
            raise self.error("'/' cannot be escaped")
        return c

    def char_class(self) -> str:
        """The regex for ``[...]`` whose ``[`` is taken."""
        negate = self.peek() == "!"
        if negate:
            self.pos += 1
        items = [self.class_item(first=True)]
        while self.peek() != "]":
            items.append(self.class_item(first=False))
        self.pos += 1
        body = "".join(items)
        # A range such as [%-0] spans '/', which no name contains.
        return f"[^/{body}]" if negate else f"(?!/)[{body}]"

    def class_item(self, *, first: bool) -> str:
        low = self.class_char(first=first)
        if self.peek() != "-" or self.peek(1) in (None, "]"):
            return re.escape(low)
        self.pos += 1
        high = self.class_char(first=False)
        if high < low:
            raise self.error(f"bad range '{low}-{high}' in '[...]'")
        return f"{re.escape(low)}-{re.escape(high)}"

    def class_char(self, *, first: bool) -> str:
        c = self.take()
        if c is None or (c == "]" and not first):
            raise self.error("unclosed '['")
        if c == "/":
            raise self.error("'/' inside '[...]'")
        if c == "\\":
            c = self.take()
            if c is None:
                raise self.error("unclosed '['")
        return c

    def braces(self, guard: str) -> str:
        """The alternation for ``{...}`` whose ``{`` is taken; ``guard`` goes before each
        alternative that does not start with a literal character."""
        if self.peek() == "}":
            raise self.error("empty '{}'")
        alternatives: list[str] = []
        pieces: list[str] = []
        starts_literal = False
        while True:
            c = self.take()
            if c is None:
                raise self.error("unclosed '{'")
            if c in ",}":
                alternatives.append(("" if starts_literal else guard) + "".join(pieces))
                if c == "}":
                    break
                pieces, starts_literal = [], False
                continue
            if c == "{":
                raise self.error("nested '{'")
            if c == "/":
                raise self.error("'/' inside '{...}'")
            literal = c == "\\" or c not in "*?["
            if not pieces:
                starts_literal = literal
            if c == "\\":
                pieces.append(re.escape(self.escaped()))
            elif c == "*":
                pieces.append("[^/]*")
            elif c == "?":
                pieces.append("[^/]")
            elif c == "[":
                pieces.append(self.char_class())
            else:
                pieces.append(re.escape(c))
        return "|".join(alternatives)


def _path_regex(components: list[_Component]) -> re.Pattern[str]:
    """One regex for a whole relative path; a '**' takes one adjacent '/' along, so that it
    can match zero components."""
    parts: list[str] = []
    need_slash = False
    for i, component in enumerate(components):
        if isinstance(component, _DoubleStar):
            if need_slash:
                parts.append(f"(?:/({_SUBPATH}))?")
            elif i == len(components) - 1:
                parts.append(f"({_SUBPATH})?")
            else:
                parts.append(f"(?:({_SUBPATH})/)?")
            continue
        if need_slash:
            parts.append("/")
        parts.append(re.escape(component) if isinstance(component, str) else component.pattern)
        need_slash = True
    return re.compile("".join(parts))


def _captures(m: re.Match[str]) -> tuple[str, ...]:
    return tuple(g or "" for g in m.groups())


class GlobPattern:
    """A compiled glob pattern, absolute (``/a/*``) or relative (``a/*``).

    Raises :class:`GlobError` when the pattern is malformed.
    """

    def __init__(self, pattern: str) -> None:
        if not pattern:
            raise GlobError(pattern, "empty pattern")
        self.pattern = pattern
        self.absolute = pattern.startswith("/")
        self._components = _Parser(pattern).components()
        self._regex = _path_regex(self._components)
        # For walk, whose states are indexes of the component to match next: the states
        # reachable from each one without consuming a name, since a '**' may match none.
        self._reachable: list[frozenset[int]] = []
        for i in range(len(self._components) + 1):
            end = i
            while end < len(self._components) and self._components[end] is _DOUBLE_STAR:
                end += 1
            self._reachable.append(frozenset(range(i, end + 1)))

    def __repr__(self) -> str:
        return f"GlobPattern({self.pattern!r})"

    @property
    def captures(self) -> int:
        """How many captures a match has (one per wildcard)."""
        return self._regex.groups

    @property
    def has_wildcards(self) -> bool:
        """Whether the pattern holds any wildcard, rather than naming one path literally."""
        return any(not isinstance(c, str) for c in self._components)

    def match(self, path: str) -> tuple[str, ...] | None:
        """The captures if all of ``path`` matches, else None.

        ``path`` must be absolute exactly when the pattern is; repeated and trailing slashes
        are ignored.
        """
        path = _SLASHES.sub("/", path)
        if path.startswith("/") != self.absolute:
            return None
        m = self._regex.fullmatch(path.strip("/"))
        return None if m is None else _captures(m)

    def walk(
        self,
        root: N,
        children: Callable[[N], Iterable[tuple[str, N]]],
        is_dir: Callable[[N], bool],
        child: Callable[[N, str], N | None] | None = None,
    ) -> Iterator[tuple[str, N, tuple[str, ...]]]:
        """Yield ``(path, node, captures)`` for every node under ``root`` that matches.

        ``root`` is the node the pattern is relative to (for an absolute pattern, the root
        directory). ``children(dir)`` lists a directory's ``(name, node)`` pairs, in any
        order; ``is_dir(node)`` says whether a node has children. ``child(dir, name)``,
        when given, looks up one name (None when absent) and is used instead of listing when
        every component still to match at a directory is literal.

        ``path`` joins the names from ``root`` with ``/``, starting with ``/`` for an
        absolute pattern (so ``root`` itself is ``""`` or ``"/"``, which ``**`` matches).
        Paths come in sorted order of their names, a directory right before its contents,
        each once. The tree must not have cycles.
        """
        components = self._components
        reachable = self._reachable
        end = len(components)
        prefix = "/" if self.absolute else ""
        stack: list[tuple[tuple[str, ...], N, Set[int]]] = [((), root, reachable[0])]
        while stack:
            names, node, states = stack.pop()
            if end in states:
                relative = "/".join(names)
                m = self._regex.fullmatch(relative)
                assert m is not None, f"walk and match disagree on {relative!r}"
                yield prefix + relative, node, _captures(m)
            pending = [i for i in states if i < end]
            if not pending or not is_dir(node):
                continue
            # The states of each child that matches one of the pending components.
            found: dict[str, tuple[N, set[int]]] = {}
            literals = {i: c for i in pending if isinstance(c := components[i], str)}
            if child is not None and len(literals) == len(pending):
                for i, name in literals.items():
                    if name not in found:
                        named_child = child(node, name)
                        if named_child is None:
                            continue
                        found[name] = (named_child, set())
                    found[name][1].update(reachable[i + 1])
            else:
                for name, node_child in children(node):
                    advanced: set[int] = set()
                    for i in pending:
                        component = components[i]
                        if isinstance(component, _DoubleStar):
                            if not name.startswith("."):
                                advanced.update(reachable[i])
                        elif isinstance(component, str):
                            if component == name:
                                advanced.update(reachable[i + 1])
                        elif component.fullmatch(name):
                            advanced.update(reachable[i + 1])
                    if advanced:
                        found[name] = (node_child, advanced)
            for name in sorted(found, reverse=True):
                node_child, advanced = found[name]
                stack.append(((*names, name), node_child, advanced))


def substitute(template: str, captures: Sequence[str]) -> str:
    """``template`` with ``$0``..``$9`` and ``${n}`` replaced by captures, ``$$`` by ``$``.

    ``$10`` is capture 1 followed by ``0``; write ``${10}`` for capture 10. Any other ``$``,
    and a reference past the last capture, raise :class:`GlobError`.

    >>> substitute("$1/${0}.series costs $$5", ["site-a", "temp"])
    'temp/site-a.series costs $5'
    """

    def replace(m: re.Match[str]) -> str:
        dollar, digit, number = m.groups()
        if dollar:
            return "$"
        if digit is None and number is None:
            raise GlobError(
                template, "'$' must be followed by '$', a digit or '{n}'", what="template"
            )
        index = int(digit if digit is not None else number)
        if index >= len(captures):
            raise GlobError(
                template,
                f"{m.group()} refers to capture {index}, but there are {len(captures)}",
                what="template",
            )
        return captures[index]

    return _REFERENCE.sub(replace, template)
