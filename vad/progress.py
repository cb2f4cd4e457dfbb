"""Progress bars that are tqdm bars on a terminal and a few plain lines in a log file.

    for key in progress(keys, desc="patches", unit="video"):
        ...

On a terminal (the stream's ``isatty()`` is true; the stream defaults to ``sys.stderr``)
`progress` returns a real ``tqdm.tqdm``. Otherwise (``make repro > log``, DVC queue logs, CI),
where tqdm's carriage-return updates would pile up into megabytes, it returns a `LogProgress`
with the same interface that writes one line as the count first crosses 25, 50 and 75 % of the
total (every 30 s when the total is unknown) and one final line with the elapsed time on close.
Bars with ``leave=False`` (inner bars, such as one per epoch) write nothing in a log, and
``disable=True`` writes nothing anywhere.

The environment variable ``VAD_PROGRESS`` overrides the choice: ``bar`` always gives tqdm bars,
``log`` always gives plain lines, ``off`` disables every bar; unset, empty or ``auto`` decides
by the stream as above.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from time import monotonic
from types import TracebackType
from typing import Any, Generic, TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")

ENV_VAR = "VAD_PROGRESS"
MODES = ("auto", "bar", "log", "off")
LOG_INTERVAL_S = 30.0  # seconds between lines when the total is unknown


def _mode() -> str:
    mode = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
    if mode not in MODES:
        raise ValueError(f"{ENV_VAR}={mode!r}: expected one of {', '.join(MODES)}")
    return mode


def _num(x: float) -> str:
    """An integral count without decimals, anything else with four significant digits."""
    if isinstance(x, int) or float(x).is_integer():
        return str(int(x))
    return f"{x:.4g}"


def _value(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class LogProgress(Generic[T]):
    """tqdm's interface, writing a few plain lines (see the module docstring) instead of a bar."""

    def __init__(
        self,
        iterable: Iterable[T] | None = None,
        *,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        leave: bool = True,
        initial: float = 0,
        disable: bool = False,
        stream: TextIO | None = None,
    ) -> None:
        if total is None and iterable is not None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except (TypeError, AttributeError):
                total = None
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit = unit
        self.leave = leave
        self.disable = disable
        self.n = initial
        self.postfix = ""
        self.stream = stream
        self.silent = disable or not leave
        self.closed = False
        self.start_t = monotonic()
        self._last_line_t = self.start_t
        self._quarter = self._quarter_of(initial)  # quarters already passed are not reported

    # -- tqdm interface ---------------------------------------------------------------------

    def __iter__(self) -> Iterator[T]:
        if self.iterable is None:
            raise TypeError("LogProgress without an iterable cannot be iterated")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LogProgress[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        """Add `n` to the count, writing a line if it crossed a quarter (or 30 s went by)."""
        self.n += n
        if self.silent or self.closed:
            return
        if self.total:
            quarter = self._quarter_of(self.n)
            if quarter > self._quarter:
                self._quarter = quarter
                self._write(self._line())
        elif self.total is None:
            now = monotonic()
            if now - self._last_line_t >= LOG_INTERVAL_S:
                self._last_line_t = now
                self._write(self._line())

    def set_postfix(
        self,
        ordered_dict: Mapping[str, object] | None = None,
        refresh: bool = True,
        **kwargs: object,
    ) -> None:
        """Show ``k=v, ...`` after the count in later lines, as tqdm does."""
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={_value(v)}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Show `s` after the count in later lines."""
        self.postfix = str(s)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        """Change the label at the start of later lines."""
        self.desc = desc or ""

    def refresh(self) -> None:
        """Nothing to redraw in a log; present for tqdm compatibility."""

    def close(self) -> None:
        """Write the final line with the elapsed time (once; nothing if silent)."""
        if self.closed:
            return
        self.closed = True
        if not self.silent:
            self._write(self._line(f"done in {monotonic() - self.start_t:.1f} s"))

    # -- lines ------------------------------------------------------------------------------

    def _quarter_of(self, n: float) -> int:
        """How many of the 25/50/75 % marks `n` has reached (0 without a positive total)."""
        if not self.total or self.total <= 0:
            return 0
        return max(0, min(int(4 * n // self.total), 3))

    def _line(self, status: str | None = None) -> str:
        if self.total is None:
            count = f"{_num(self.n)} {self.unit}"
        else:
            count = f"{_num(self.n)}/{_num(self.total)} {self.unit}"
        if status is None and self.total:
            status = f"({100 * self.n / self.total:.0f}%)"
        parts = [count, status, self.postfix]
        text = " ".join(p for p in parts if p)
        return f"{self.desc}: {text}" if self.desc else text

    def _write(self, line: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write(line + "\n")
        stream.flush()


ProgressBar = tqdm | LogProgress  # what `progress` returns, for type hints


def progress(
    iterable: Iterable[T] | None = None,
    *,
    total: float | None = None,
    desc: str = "",
    unit: str = "it",
    leave: bool = True,
    initial: float = 0,
    disable: bool = False,
    stream: TextIO | None = None,
) -> tqdm | LogProgress[T]:
    """A tqdm bar on a terminal, a `LogProgress` elsewhere (see the module docstring)."""
    stream = stream if stream is not None else sys.stderr
    mode = _mode()
    disable = disable or mode == "off"
    if mode == "auto":
        isatty = getattr(stream, "isatty", None)
        try:
            mode = "bar" if isatty is not None and isatty() else "log"
        except ValueError:  # a closed stream
            mode = "log"
    kwargs: dict[str, Any] = dict(
        total=total, desc=desc, unit=unit, leave=leave, initial=initial, disable=disable
    )
    if mode == "bar":
        return tqdm(iterable, file=stream, **kwargs)
    return LogProgress(iterable, stream=stream, **kwargs)
