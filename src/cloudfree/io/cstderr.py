"""Hold what C libraries print on standard error while a raster is written.

libtiff reports a full disk by printing ``_tiffSeekProc: No space left on device.`` (and GDAL
adds ``ERROR 1: TIFFWriteDirectoryTagData: IO error ...``) straight to file descriptor 2, often
during a window write that GDAL itself reports as a success, before our own one-line error says
the same with the file named. :class:`CStderrHold` redirects descriptor 2 to a scratch file
around each GDAL call of a writer and keeps what was printed: :meth:`~CStderrHold.release`
passes it on unchanged when the whole file was written (a genuine warning is never lost),
:meth:`~CStderrHold.close` drops it when the write failed (the exception tells the user).
Python's own ``sys.stderr`` writes (progress bars) happen outside these calls.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO

__all__ = ["CStderrHold"]

_FD = 2
#: At most this much held text is kept (the start of it).
_LIMIT = 64 * 1024


class CStderrHold:
    """Redirect file descriptor 2 while :meth:`held` is active (see the module docstring)."""

    def __init__(self) -> None:
        self._scratch: IO[bytes] | None = None
        self._pending = bytearray()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        try:
            saved = os.dup(_FD)
        except OSError:  # no descriptor 2 (a daemon): nothing to hold
            yield
            return
        if self._scratch is None:
            self._scratch = tempfile.TemporaryFile()
        scratch = self._scratch
        scratch.seek(0)
        scratch.truncate()
        os.dup2(scratch.fileno(), _FD)
        try:
            yield
        finally:
            os.dup2(saved, _FD)
            os.close(saved)
            scratch.seek(0)
            room = _LIMIT - len(self._pending)
            if room > 0:
                self._pending += scratch.read(room)

    def release(self) -> None:
        """Pass the held text on to descriptor 2 (the write succeeded), then :meth:`close`."""
        if self._pending:
            with contextlib.suppress(OSError):
                os.write(_FD, bytes(self._pending))
        self.close()

    def close(self) -> None:
        """Drop the held text and the scratch file."""
        self._pending.clear()
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None
