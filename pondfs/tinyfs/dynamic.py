"""The protocol of computed ("dynamic") nodes, and of the factories that build them.

A dynamic node is stored as a factory name plus a configuration; its content is computed
from other nodes when it is used. Factories implement these classes; tinyfs only calls the
methods below, so a factory never learns how the pond is stored. An :class:`FS` finds
factories by name through :class:`Factories` (pondfs's registry of kinds,
``pondfs.kinds``, is one; :class:`FactoryRegistry` is a plain one).
"""

from __future__ import annotations

import errno
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, BinaryIO, Protocol

from .errors import FsError

if TYPE_CHECKING:
    from .fs import FS


class DynamicNode(ABC):
    """A computed node: a directory or a file whose content derives from other nodes."""

    @abstractmethod
    def mtime_ns(self) -> int:
        """When the inputs last changed (the newest input version's time)."""


class DynamicDirectory(DynamicNode):
    """A computed directory: its entries are produced on demand."""

    @abstractmethod
    def entries(self) -> Iterable[tuple[str, DynamicNode]]:
        """Every (name, node) entry, computed when asked."""

    def lookup(self, name: str) -> DynamicNode | None:
        """The entry called ``name``, or None (override when cheaper than listing)."""
        return dict(self.entries()).get(name)


class DynamicFile(DynamicNode):
    """A computed file: exact size and a reader; both may compute and cache the content."""

    @abstractmethod
    def size(self) -> int:
        """The exact size in bytes of the content :meth:`open` returns."""

    @abstractmethod
    def open(self) -> BinaryIO:
        """A seekable reader of the content."""


#: Builds a node from (fs, configuration bytes, the dynamic node's id).
Factory = Callable[["FS", bytes, str], DynamicNode]
#: Raises FsError(EINVAL, ...) naming the field when a configuration is not valid.
Validator = Callable[[bytes], None]


class Factories(Protocol):
    """What an :class:`FS` asks of its factories, by the name a dynamic node stores."""

    def validate(self, name: str, config: bytes) -> None:
        """Check ``config`` for factory ``name``; raise FsError(EINVAL) if it is wrong."""

    def build(self, name: str, fs: FS, config: bytes, node_id: str) -> DynamicNode:
        """Make the node a factory describes."""


class FactoryRegistry:
    """Factory names mapped to how to validate a configuration and build the node (the
    plain :class:`Factories`: registered one by one, nothing imported lazily)."""

    def __init__(self) -> None:
        self._factories: dict[str, tuple[Factory, Validator]] = {}

    def register(self, name: str, factory: Factory, validate: Validator) -> None:
        """Make ``name`` usable as a dynamic node's factory."""
        self._factories[name] = (factory, validate)

    def names(self) -> list[str]:
        """The registered factory names."""
        return sorted(self._factories)

    def _get(self, name: str) -> tuple[Factory, Validator]:
        try:
            return self._factories[name]
        except KeyError:
            known = ", ".join(self.names()) or "none registered"
            raise FsError(errno.EINVAL, f"unknown factory {name!r} (known: {known})") from None

    def validate(self, name: str, config: bytes) -> None:
        """Check ``config`` for factory ``name``; raise FsError(EINVAL) if it is wrong."""
        self._get(name)[1](config)

    def build(self, name: str, fs: FS, config: bytes, node_id: str) -> DynamicNode:
        """Make the node a factory describes."""
        return self._get(name)[0](fs, config, node_id)
