"""The randomized soak test (tests/soak.py), bounded for CI.

Longer by hand: `make soak`, or SOAK_SEEDS=1-50 SOAK_PASSES=300 pytest tests/test_soak.py -s
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from soak import run_soak


def _seeds() -> list[int]:
    text = os.environ.get("SOAK_SEEDS", "1,2")  # make soak: 20 seeds of 300 passes
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(seed) for seed in text.split(",")]


@pytest.mark.parametrize("seed", _seeds())
def test_soak(seed: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    passes = int(os.environ.get("SOAK_PASSES", "40"))
    summary = run_soak(seed, passes, tmp_path, fault_rate=0.3)
    with capsys.disabled():
        print(f"\n{summary}  (reproduce: SOAK_SEEDS={seed} SOAK_PASSES={passes})")
    assert summary.faults.total() > passes  # the faults did happen
