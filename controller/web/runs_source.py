"""MissionControl web: the runs panel, from the run catalog if it is installed.

:class:`RunsSource` imports ``constellation.service.catalog.RunCatalog`` lazily; without it (or
without ``--data-dir``) ``available`` is False and ``reason`` says why, for the panel.
"""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import Any

__all__ = ["RunsSource"]


class RunsSource:
    """Recent runs (condition, record counts, comment) and operator comments."""

    def __init__(self, data_dir: Path | None, catalog: Any = None) -> None:
        self._lock = threading.Lock()
        self.catalog = catalog
        self.reason = ""
        if catalog is not None:
            return
        if data_dir is None:
            self.reason = "runs: not available (start MissionControl with --data-dir DIR)"
            return
        try:
            module = importlib.import_module("constellation.service.catalog")
            self.catalog = module.RunCatalog(data_dir)
        except Exception as exc:  # missing module or unreadable directory
            self.reason = f"runs: not available ({type(exc).__name__}: {exc})"

    @property
    def available(self) -> bool:
        return self.catalog is not None

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        if self.catalog is None:
            return []
        with self._lock:
            self.catalog.refresh()
            rows = self.catalog.runs(limit)
        out = []
        for run in rows:
            senders = dict(run.get("senders") or {})
            out.append(
                {
                    "run_id": str(run.get("run_id", "")),
                    "condition": str(run.get("condition", "")),
                    "senders": {str(k): int(v) for k, v in senders.items()},
                    "records": sum(int(v) for v in senders.values()),
                    "comment": str(run.get("comment") or ""),
                }
            )
        return out

    def close(self) -> None:
        """Close the catalog's database (the server stops)."""
        with self._lock:
            catalog, self.catalog = self.catalog, None
        if catalog is not None and hasattr(catalog, "close"):
            catalog.close()
            self.reason = "runs: closed"

    def set_comment(self, run_id: str, text: str) -> None:
        if self.catalog is None:
            raise LookupError(self.reason)
        with self._lock:
            self.catalog.set_comment(run_id, text)
