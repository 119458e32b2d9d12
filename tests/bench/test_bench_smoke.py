"""CI runs the benchmark's smoke mode: every scenario completes and the table is printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.report import HEADER
from bench.scenarios import SCENARIOS

REPO = Path(__file__).resolve().parents[2]


def test_bench_smoke_completes_and_reports_every_scenario(tmp_path: Path) -> None:
    results = tmp_path / "bench.json"
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(results)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert HEADER in finished.stdout
    document = json.loads(results.read_text())
    assert document["smoke"] is True
    assert set(document["scenarios"]) == set(SCENARIOS)
    for name, scenario in document["scenarios"].items():
        assert "error" not in scenario, scenario.get("error")
        assert scenario["rows"], f"{name} reported nothing"
