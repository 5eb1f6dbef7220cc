"""Progress display: a bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io

from rlte_plugins.training.progress import Progress


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_gets_a_bar_with_frames_fps_and_return():
    stream = FakeTTY()
    bar = Progress(1000, stream=stream, desc="train")
    bar.update(500, {"charts/episodic_return": 42.0})
    bar.close()
    text = stream.getvalue()
    assert "500/1.00k" in text and "ret=42.0" in text and "fps=" in text


def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    bar = Progress(1000, stream=stream, interval=3600)
    bar.update(500, {"charts/episodic_return": 1.0})  # inside the interval: silent
    bar.update(1000, {"charts/episodic_return": float("nan")})  # the end always prints; NaN keeps the last return
    bar.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "frames 1,000/1,000 (100%)" in lines[0] and "episode return 1.0" in lines[0]


def test_disabled_prints_nothing():
    stream = FakeTTY()
    Progress(10, enabled=False, stream=stream).update(10, {})
    assert stream.getvalue() == ""
