import io

from rl_post.progress import FILE_REFRESH_S, FrameLines, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_frames_become_lines_without_carriage_returns_or_cursor_codes():
    out = io.StringIO()
    frames = FrameLines(out)
    frames.write("\rtrain 1/4 |#   |")
    frames.write("\rtrain 2/4 |##  |   ")
    frames.write("\r" + " " * 20 + "\r")  # a bar clearing itself (leave=False)
    frames.write("\x1b[A")  # cursor up, as nested bars do
    frames.write("a message\n")
    assert out.getvalue() == "train 1/4 |#   |\ntrain 2/4 |##  |\na message\n"


def test_bar_off_a_terminal_writes_plain_lines_at_a_slow_refresh():
    out = io.StringIO()
    with progress_bar(file=out, total=3, desc="eval", unit="ep") as bar:
        assert bar.mininterval == FILE_REFRESH_S
        for _ in range(3):
            bar.update(1)
        bar.set_postfix_str("success=2/3")  # a forced redraw shows at once
    text = out.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert lines[0].startswith("eval") and "0/3" in lines[0]
    assert any("success=2/3" in line for line in lines)
    assert len(lines) <= 4  # start, forced redraw, close: not a frame per update


def test_bar_on_a_terminal_redraws_in_place():
    out = Terminal()
    with progress_bar(file=out, total=2, desc="demos", mininterval=0) as bar:
        bar.update(2)
    assert "\r" in out.getvalue()


def test_bar_off_a_terminal_keeps_a_long_postfix_whole():
    out = io.StringIO()
    postfix = ", ".join(f"metric{i}=0.123" for i in range(30))
    with progress_bar(file=out, total=2, desc="train") as bar:
        bar.set_postfix_str(postfix)
    assert any(postfix in line for line in out.getvalue().splitlines())
