"""``pond maintain``: keep a pond's storage small and fast to open as history grows.

Checkpoint the Delta log, compact small data files, vacuum data files no snapshot within the
retention needs, and remove content objects no row refers to. Nothing any row refers to is
ever removed: rows are never deleted, and compaction rewrites them before vacuum runs.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

from .table import OplogPersistence

log = logging.getLogger(__name__)

#: How long superseded data files and unreferenced objects are kept by default: a week.
DEFAULT_RETENTION_HOURS = 168


def maintain(
    persistence: OplogPersistence, retention_hours: float = DEFAULT_RETENTION_HOURS
) -> dict[str, Any]:
    """Compact, checkpoint, vacuum and collect unreferenced objects; return what was done.

    Takes the writer lock unless ``persistence`` holds it already. Files and objects younger
    than ``retention_hours`` are kept: readers pinned to an older snapshot, and a writer's
    objects not yet committed, stay safe. (A retention of 0 is for tests and emergencies.)
    """
    held = persistence.holds_lock
    with nullcontext() if held else persistence.writer_lock("pond maintain"):
        files_before = persistence.data_file_count()
        metrics = persistence.compact()
        persistence.checkpoint()
        vacuumed = persistence.vacuum(retention_hours)
        referenced = persistence.referenced_objects()
        removed = persistence.objects.remove_unreferenced(referenced, retention_hours * 3600)
        report = {
            "table_version": persistence.table_version(),
            "data_files_before": files_before,
            "data_files_after": persistence.data_file_count(),
            "files_compacted": metrics.get("numFilesRemoved", 0),
            "files_vacuumed": len(vacuumed),
            "objects_referenced": len(referenced),
            "objects_removed": removed,
        }
    log.info("maintenance: %s", report)
    return report
