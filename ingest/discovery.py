"""Which files of a folder an ingest run reads, and what it passes over (and why)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def discover(folder: Path) -> tuple[list[tuple[str, Path]], list[dict[str, str]]]:
    """Regular files under ``folder`` (relative POSIX path, path), and what was passed over.

    Symlinked files are followed only when they resolve inside the folder; symlinked folders
    are never followed (their target is either inside, and walked anyway, or outside).
    """
    root = folder.resolve()
    files: list[tuple[str, Path]] = []
    passed_over: list[dict[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        dirnames.sort()
        for name in list(dirnames):
            path = here / name
            rel = path.relative_to(root).as_posix()
            if name.startswith("."):
                dirnames.remove(name)
                passed_over.append({"path": rel + "/", "reason": "hidden folder"})
            elif path.is_symlink():
                inside = path.resolve().is_relative_to(root)
                passed_over.append(
                    {
                        "path": rel + "/",
                        "reason": (
                            "symlinked folder inside the ingested folder (ingested at its own path)"
                            if inside
                            else "symlink pointing outside the ingested folder"
                        ),
                    }
                )
        for name in sorted(filenames):
            path = here / name
            rel = path.relative_to(root).as_posix()
            if name.startswith("."):
                passed_over.append({"path": rel, "reason": "hidden file"})
                continue
            if path.is_symlink():
                if not path.resolve().is_relative_to(root):
                    passed_over.append(
                        {"path": rel, "reason": "symlink pointing outside the ingested folder"}
                    )
                    continue
                if not path.exists():
                    passed_over.append({"path": rel, "reason": "broken symlink"})
                    continue
            try:
                mode = path.stat().st_mode
            except OSError as exc:
                passed_over.append({"path": rel, "reason": f"unreadable: {exc.strerror or exc}"})
                continue
            if not stat.S_ISREG(mode):  # FIFOs, sockets, devices: reading them could block forever
                passed_over.append({"path": rel, "reason": "not a regular file"})
                continue
            files.append((rel, path))
    return files, passed_over
