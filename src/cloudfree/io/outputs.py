"""May this output be written? The one check every command runs before writing a file.

Decisions:

* **Never an input.** An output whose resolved path (symbolic links and ``..`` followed) is one
  of the run's inputs is refused, even with ``overwrite``: ``--overwrite`` is consent to
  replace an old *output*, never the data the run reads.
* **Never an existing file without consent.** An existing output is refused unless
  ``overwrite`` is true (the CLI's ``--overwrite``); a directory under an output's name is
  always refused.
* **Failed writes name the file.** :func:`write_failure` turns the ``OSError`` or rasterio
  error of a failed write into :class:`~cloudfree.errors.InputFileError` naming the final file
  and the reason in words (no space left, read-only file system, permission denied), found
  from ``errno`` or, when GDAL hides it, from the target directory itself.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

from cloudfree.errors import InputFileError

__all__ = ["check_output", "same_file", "write_failure"]

PathLike = str | os.PathLike[str]


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file (resolved paths; also the same inode when
    both exist, which catches hard links)."""
    pa, pb = Path(a), Path(b)
    try:
        if pa.resolve() == pb.resolve():
            return True
        return pa.exists() and pb.exists() and os.path.samefile(pa, pb)
    except OSError:
        return False


def check_output(
    path: PathLike,
    *,
    inputs: Iterable[PathLike | None] = (),
    overwrite: bool = False,
    what: str = "output",
) -> Path:
    """Refuse to write ``path`` when it is an input, a directory, or (without ``overwrite``)
    an existing file; return it as a :class:`~pathlib.Path`.

    Raises:
        InputFileError: naming ``path`` and the fix (another name, or ``--overwrite``).
    """
    out = Path(path)
    for p in inputs:
        if p is not None and same_file(out, p):
            raise InputFileError(
                out, f"the {what} would overwrite the input {p} of this run; choose another name"
            )
    if out.is_dir():
        raise InputFileError(out, f"is a directory, expected the {what}'s file name")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise InputFileError(out, "already exists; pass --overwrite to replace it")
    return out


_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def _directory_reason(directory: Path) -> str | None:
    """Why ``directory`` cannot take a file, judged from the directory itself (for GDAL errors
    that lose ``errno``)."""
    d = directory
    while not d.exists() and d != d.parent:
        d = d.parent
    try:
        st = os.statvfs(d)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return _REASONS[errno.EROFS]
    if st.f_bavail == 0 or st.f_favail == 0:
        return _REASONS[errno.ENOSPC]
    if not os.access(d, os.W_OK):
        return _REASONS[errno.EACCES]
    return None


def write_failure(path: PathLike, exc: BaseException) -> InputFileError:
    """The one-line error for a failed write of ``path`` (raise it ``from None``)."""
    final = Path(path)
    reason = None
    e: BaseException | None = exc
    while e is not None and reason is None:
        if isinstance(e, OSError) and e.errno in _REASONS:
            reason = _REASONS[e.errno]
        e = e.__cause__ or e.__context__
    reason = reason or _directory_reason(final.parent)
    detail = reason or str(exc) or type(exc).__name__
    return InputFileError(final, f"could not write the file ({detail}); nothing was written")
