"""`tradeplane-runtime run` in backtest mode, as the pod runs it: exit 0 with the report
as the termination message, exit 2 naming the bad line of a candle file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.backtest_case import band_spec, candle_file
from tradeplane_operator.api.models import BacktestReport

SCRIPT = Path(sys.executable).parent / "tradeplane-runtime"


def run(tmp_path: Path, candles: str, port: int) -> tuple[subprocess.CompletedProcess[str], Path]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "candles.csv").write_text(candles)
    config: dict[str, Any] = {
        "metadata": {"name": "bt", "namespace": "ns"},
        "spec": band_spec({"source": "csv", "configMap": "candles", "key": "candles.csv"}),
    }
    (tmp_path / "module.json").write_text(json.dumps(config))
    message = tmp_path / "termination-log"
    env = {
        **os.environ,
        "TRADEPLANE_CONFIG_FILE": str(tmp_path / "module.json"),
        "TRADEPLANE_BACKTEST_DATA_DIR": str(data),
        "TRADEPLANE_TERMINATION_MESSAGE_PATH": str(message),
        "TRADEPLANE_LISTEN_ADDRESS": "127.0.0.1",
        "TRADEPLANE_PORT": str(port),
    }
    proc = subprocess.run(
        [str(SCRIPT), "run"], env=env, capture_output=True, text=True, timeout=120
    )
    return proc, message


def test_backtest_process_exits_0_with_its_report(tmp_path: Path) -> None:
    proc, message = run(tmp_path, candle_file(), 18431)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = BacktestReport.model_validate(json.loads(message.read_text())["backtest"])
    assert report.candles == 13 and report.trades == 3
    assert "backtest finished" in proc.stderr + proc.stdout


def test_a_bad_candle_file_exits_2_naming_the_line(tmp_path: Path) -> None:
    proc, message = run(tmp_path, "time,open,high,low,close\n60,1,1,1,1\n60,1,1,1,1\n", 18432)
    assert proc.returncode == 2
    assert "line 3" in proc.stderr
    assert not message.exists()
