"""Progress bars: tqdm on a terminal, a few plain lines in a log."""

from __future__ import annotations

import io

import pytest
from tqdm import tqdm

import vad.progress as progress_module
from vad.progress import LogProgress, progress


class TtyStream(io.StringIO):
    """A StringIO that claims to be a terminal."""

    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(autouse=True)
def _auto_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAD_PROGRESS", raising=False)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(progress_module, "monotonic", fake)
    return fake


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_quarter_lines_and_final_line(clock: FakeClock) -> None:
    out = io.StringIO()
    bar = progress(total=100, desc="flow", unit="pair", stream=out)
    assert isinstance(bar, LogProgress)
    for _ in range(100):
        bar.update()
    clock.t += 12.34
    bar.close()
    bar.close()  # a second close writes nothing
    assert lines(out) == [
        "flow: 25/100 pair (25%)",
        "flow: 50/100 pair (50%)",
        "flow: 75/100 pair (75%)",
        "flow: 100/100 pair done in 12.3 s",
    ]
    assert "\r" not in out.getvalue()


def test_big_step_writes_one_line_and_initial_quarters_are_skipped() -> None:
    out = io.StringIO()
    with progress(total=8, initial=3, desc="dyn", unit="video", stream=out) as bar:
        bar.update(4)  # 3 -> 7 crosses 50 % and 75 %: one line
        bar.update(1)
    assert [line.split(" (")[0] for line in lines(out)[:-1]] == ["dyn: 7/8 video"]
    assert lines(out)[-1].startswith("dyn: 8/8 video done in ")


def test_leave_false_prints_nothing() -> None:
    out = io.StringIO()
    bar = progress(range(10), desc="epoch 1", leave=False, stream=out)
    assert list(bar) == list(range(10))
    assert bar.n == 10
    assert out.getvalue() == ""


@pytest.mark.parametrize("stream_type", [io.StringIO, TtyStream])
def test_disable_prints_nothing(stream_type: type[io.StringIO]) -> None:
    out = stream_type()
    with progress(total=4, desc="x", disable=True, stream=out) as bar:
        for _ in range(4):
            bar.update()
    assert list(progress([1, 2], disable=True, stream=out)) == [1, 2]
    assert out.getvalue() == ""


def test_iteration_yields_all_items_and_counts() -> None:
    out = io.StringIO()
    items = [f"video{i}" for i in range(8)]
    bar = progress(items, desc="patches", unit="video", stream=out)
    assert bar.total == 8
    assert list(bar) == items
    assert bar.n == 8
    assert len(lines(out)) == 4  # closed when exhausted: 3 quarters + final
    assert lines(out)[-1].startswith("patches: 8/8 video done in ")


def test_n_tracks_updates() -> None:
    bar = progress(total=50, stream=io.StringIO())
    bar.update(5)
    bar.update(20 - bar.n)
    assert bar.n == 20
    bar.update(0)
    assert bar.n == 20
    bar.close()


def test_postfix_appears_in_lines() -> None:
    out = io.StringIO()
    with progress(total=4, desc="train", unit="batch", stream=out) as bar:
        bar.set_postfix({"loss": 0.123456}, kl=2)
        bar.update()
        bar.set_postfix_str("train/01")
        bar.update(3)
    got = lines(out)
    assert got[0] == "train: 1/4 batch (25%) loss=0.1235, kl=2"
    assert got[-1].startswith("train: 4/4 batch done in ")
    assert got[-1].endswith(" s train/01")


def test_unknown_total_prints_by_time(clock: FakeClock) -> None:
    out = io.StringIO()
    bar = progress(desc="frames", unit="frame", stream=out)
    assert bar.total is None
    for _ in range(1000):
        bar.update()
    assert lines(out) == []  # no time has passed
    clock.t += 29.9
    bar.update()
    assert lines(out) == []
    clock.t += 0.2
    bar.update()
    clock.t += 10
    bar.update()  # only 10 s since the last line
    clock.t += 25
    bar.update()
    clock.t += 1.5
    bar.close()
    assert lines(out) == [
        "frames: 1002 frame",
        "frames: 1004 frame",
        "frames: 1004 frame done in 66.6 s",
    ]


def test_unsized_iterable_has_unknown_total() -> None:
    out = io.StringIO()
    assert list(progress(iter("abc"), desc="it", stream=out)) == ["a", "b", "c"]
    assert lines(out)[0].startswith("it: 3 it done in ")


def test_tty_gives_tqdm() -> None:
    out = TtyStream()
    bar = progress(total=3, desc="bar", stream=out)
    assert isinstance(bar, tqdm)
    bar.update(2)
    assert bar.n == 2
    bar.close()


def test_env_log_forces_lines_on_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAD_PROGRESS", "log")
    out = TtyStream()
    bar = progress(total=4, desc="forced", stream=out)
    assert isinstance(bar, LogProgress)
    bar.update(4)
    bar.close()
    assert lines(out)[0] == "forced: 4/4 it (100%)"
    assert lines(out)[1].startswith("forced: 4/4 it done in ")


def test_env_bar_forces_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAD_PROGRESS", "bar")
    out = io.StringIO()
    bar = progress(total=2, desc="b", stream=out)
    assert isinstance(bar, tqdm)
    bar.close()


def test_env_off_disables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAD_PROGRESS", "off")
    for out in (io.StringIO(), TtyStream()):
        with progress(total=2, stream=out) as bar:
            bar.update(2)
        assert out.getvalue() == ""


def test_env_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAD_PROGRESS", "loud")
    with pytest.raises(ValueError, match="VAD_PROGRESS"):
        progress(total=1, stream=io.StringIO())
