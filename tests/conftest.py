"""Shared test fixtures: paths to ../shared/fixtures (skipped when absent) and tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fixtures"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared fixture {path} is absent (tests that need real data skip without it)")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """../shared/fixtures (skips the test when absent)."""
    return _need(SHARED)


@pytest.fixture(scope="session")
def upstream_ckpt():
    """Function name -> path of a published checkpoint ('tiny' or 'small')."""
    def get(name: str) -> Path:
        return _need(SHARED / "upstream" / f"nanomamba_{name}.pt")
    return get


@pytest.fixture(scope="session")
def expected_logits() -> dict:
    return json.loads(_need(SHARED / "expected_float_logits.json").read_text())


@pytest.fixture(scope="session")
def speech_commands_test() -> Path:
    return _need(SHARED / "speech_commands_test")
