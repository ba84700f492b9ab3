"""The console says each thing once; the log file keeps everything."""

import io
import logging
import warnings

import pytest

from benchmark.lightning.console import quiet_console


@pytest.fixture()
def handlers(tmp_path):
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    console, file = logging.StreamHandler(io.StringIO()), logging.FileHandler(tmp_path / "job.log")
    root.handlers[:] = [console, file]
    root.setLevel(logging.INFO)
    yield console.stream, tmp_path / "job.log"
    root.handlers[:], root.level = saved
    file.close()
    logging.captureWarnings(False)


def test_lightning_lines_print_once_without_tips_and_warnings_once(handlers):
    import lightning.pytorch  # noqa: F401  (installs its own handler)

    console, log_file = handlers
    quiet_console()
    lightning_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    lightning_log.info("GPU available: False")
    lightning_log.info("GPU available: False")  # the next stage's trainer says it again
    lightning_log.info("💡 Tip: For seamless cloud logging, try installing [litlogger]")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        for _ in range(3):
            warnings.warn("`disp` is deprecated\nand more detail", DeprecationWarning)
    shown = console.getvalue().splitlines()
    assert shown.count("GPU available: False") == 1
    assert not [line for line in shown if "litlogger" in line]
    assert sum("`disp` is deprecated" in line for line in shown) == 1 and "and more detail" not in console.getvalue()
    assert log_file.read_text().count("`disp` is deprecated") == 3  # the file keeps every occurrence
    assert log_file.read_text().count("GPU available: False") == 2
