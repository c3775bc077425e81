"""``pond site build``: the pond's static site."""

from __future__ import annotations

import argparse

from .. import pond
from .common import Commands, add_at
from .errors import CommandError


def add_commands(commands: Commands) -> None:
    """Add site."""
    command = commands.add

    p = command("site", cmd_site, "build the pond's Observable Framework site",
                description="Mount the pond read-only, build the static site of its pages "
                            "(template resources under --pages) and data (--data) with "
                            "Observable Framework into OUT, and unmount. OUT is replaced "
                            "whole once the build succeeded; building and viewing need no "
                            "network. See pondfs/site.py.")
    p.add_argument("action", choices=["build"])
    p.add_argument("out", metavar="OUT", help="the output directory (replaced)")
    p.add_argument("--from", dest="from_dir", metavar="DIR",
                   help="build from this mounted pond (or copy of one) instead of mounting")
    p.add_argument("--pages", default="/site", metavar="PATH",
                   help="pond directory of page sections and index/index.md (default /site)")
    p.add_argument("--data", action="append", metavar="PATH",
                   help="pond directory the pages read, as data/PATH (repeatable; "
                        "default /reduce)")
    p.add_argument("--project", metavar="DIR", help="the site project (default: site/ "
                   "beside the pondfs package)")
    p.add_argument("--title", help="the site's title (default Pond)")
    add_at(p)
    p.set_defaults(pond_optional=True)


def cmd_site(args: argparse.Namespace) -> int:
    """pond site build OUT: the pond's static site."""
    from .. import site

    if args.from_dir and args.at is not None:
        raise CommandError("--at reads the pond as of a transaction: not with --from")
    built = site.build(
        args.out, pond=None if args.from_dir else pond.pond_location(args.pond),
        from_dir=args.from_dir, at=args.at, pages=args.pages,
        data=args.data or list(site.DEFAULT_DATA), project=args.project or site.DEFAULT_PROJECT,
        title=args.title)
    print(f"built {built.pages} pages into {built.output} in {built.seconds:.1f} s")
    return 0
