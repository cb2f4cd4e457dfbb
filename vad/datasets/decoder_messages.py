"""What the image decoders say while decoding: OpenCV's libjpeg and libpng print their warnings
("Corrupt JPEG data: 95 extraneous bytes before marker 0xd9", "libpng error: IDAT: CRC error")
to file descriptor 2 and return an image anyway (or None, with no reason). `capture_messages`
runs a decode with descriptor 2 redirected into a per-process temporary file and returns that
text, so the caller can turn it into an error.

While a decode runs, anything another thread writes to descriptor 2 lands in the same file; the
caller passes on what is not a decoder message with `forward`. Decodes through
`capture_messages` are serialised by a lock; the redirection costs about 3 µs per call (2.9 µs
around an empty call), under 1 % of decoding a 360×240 JPEG (2.2 µs added to 263 µs).

libjpeg prints only the first warning of an image, and it cannot see every damage: garbage that
it reads as valid Huffman codes and that leaves it in step with the data decodes without a
warning (27-32 % of random 64-byte bursts in the scan data of Ped2 frames, mean errors up to 105
grey levels). Only a checksum of the file would catch those. Numbers from
`python -m vad bench decode ped2 <root>`, reports/bench/decode.json.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_sink: int | None = None  # descriptor of this process's temporary file
_sink_pid = 0

# libjpeg(-turbo) warnings that mean the image data is damaged (its other warnings, such as an
# unknown JFIF revision or a bad ICC profile marker, leave the pixels intact).
_CORRUPT_JPEG = re.compile(
    r"Corrupt JPEG data: (?!bad ICC marker).*"
    r"|Premature end of JPEG file"
    r"|Invalid SOS parameters for sequential JPEG"
    r"|Inconsistent progression sequence.*"
)


def _reset_after_fork() -> None:
    global _lock, _sink, _sink_pid
    _lock = threading.Lock()
    _sink, _sink_pid = None, 0  # the inherited file is shared with the parent: open a new one


os.register_at_fork(after_in_child=_reset_after_fork)


def _sink_fd() -> int:
    global _sink, _sink_pid
    if _sink is None or _sink_pid != os.getpid():
        handle, path = tempfile.mkstemp(prefix="vad-decoder-")
        os.unlink(path)  # the open descriptor keeps it alive; nothing is left behind
        _sink, _sink_pid = handle, os.getpid()
    return _sink


def capture_messages(decode: Callable[[], T]) -> tuple[T, str]:
    """Run `decode()` with descriptor 2 redirected; return its result and what was written."""
    with _lock:
        sink = _sink_fd()
        try:
            saved = os.dup(2)
        except OSError:  # no descriptor 2 (a daemon): nothing to capture
            return decode(), ""
        try:
            os.dup2(sink, 2)
            try:
                result = decode()
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)
        size = os.fstat(sink).st_size
        if not size:
            return result, ""
        text = os.pread(sink, size, 0).decode(errors="replace")
        os.ftruncate(sink, 0)
        os.lseek(sink, 0, os.SEEK_SET)  # descriptor 2 moved the shared offset
    return result, text


def corrupt_jpeg_messages(text: str) -> tuple[list[str], str]:
    """Split captured text into libjpeg's corrupt-data warnings and the rest."""
    corrupt, rest = [], []
    for line in text.splitlines(keepends=True):
        (corrupt if _CORRUPT_JPEG.fullmatch(line.strip()) else rest).append(line)
    return [line.strip() for line in corrupt], "".join(rest)


def forward(text: str) -> None:
    """Write captured text that was not a decoder message back to descriptor 2."""
    data = text.encode(errors="replace")
    while data:
        data = data[os.write(2, data) :]
