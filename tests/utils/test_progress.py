"""Progress bars: live on a terminal, throttled in a log, silent when disabled."""
from augpaint_fast.progress import LOG_INTERVAL_S, progress


def test_off_a_terminal_the_bar_is_throttled(capsys):
    bar = progress(range(1000), desc="work")
    assert bar.mininterval == LOG_INTERVAL_S
    assert sum(bar) == 499500
    err = capsys.readouterr().err
    assert "work" in err and err.count("\r") <= 3  # the first and the last draw, not one per item


def test_disabled_bar_prints_nothing(capsys):
    assert list(progress(range(5), enabled=False, desc="quiet")) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ""
