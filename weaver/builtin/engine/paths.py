"""Where a SQLite datasource's file is: under ``WEAVER_SQLITE_ROOT``, never outside it.

Symlinks are resolved before the check, and again at every open, so a link swapped in
later cannot escape.
"""

from __future__ import annotations

import os
import stat
from urllib.parse import quote


class PathRefused(ValueError):
    pass


def inside_root(root: str, path: object) -> str:
    """The file ``path`` names under the (resolved) ``root``, every symlink resolved."""
    return resolve(root, path)[0]


def resolve(root: str, path: object) -> tuple[str, os.stat_result | None]:
    """`inside_root`, and the file's status when finding the path took it anyway."""
    if not isinstance(path, str) or not path.strip():
        raise PathRefused("must be a non-empty string")
    if "\x00" in path:
        raise PathRefused("must not contain NUL characters")
    if os.path.isabs(path):
        raise PathRefused("must be relative to WEAVER_SQLITE_ROOT")
    joined = os.path.join(root, path)
    # Checked on every query, so the common case is cheap: a regular file (not a link)
    # directly in the resolved root is already its own real path. One lstat instead of
    # resolving every component of the root again.
    if os.sep not in path and path not in (os.curdir, os.pardir):
        try:
            status = os.lstat(joined)
        except OSError:
            pass
        else:
            if stat.S_ISREG(status.st_mode):
                return joined, status
    resolved = os.path.realpath(joined)
    if not resolved.startswith(root + os.sep):
        raise PathRefused("must stay inside WEAVER_SQLITE_ROOT")
    return resolved, None


def read_only_uri(file: str) -> str:
    return f"file:{quote(file)}?mode=ro"
