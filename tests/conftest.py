"""Shared fixtures: the development data and one small real workspace built once per test run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEV_DATA = Path(os.environ.get("INFICOND_DATA", REPO.parent / "shared" / "data" / "voc2012-subset")).resolve()
SMALL_LIMIT = int(os.environ.get("INFICOND_TEST_LIMIT", "48"))


@pytest.fixture(scope="session")
def dev_data() -> Path:
    if not (DEV_DATA / "labels.csv").exists():
        pytest.fail(f"development data not found at {DEV_DATA}; set INFICOND_DATA")
    return DEV_DATA


@pytest.fixture(scope="session")
def prepared_workspace(dev_data, tmp_path_factory) -> Path:
    """A real workspace (first SMALL_LIMIT images of each split, real encoder and teacher), distilled.

    Built once per run; tests that change it must use ``workspace`` (a private copy).
    """
    from inficond.prepare import prepare
    from inficond.session import Session

    out = tmp_path_factory.mktemp("ws") / "small"
    prepare(dev_data, out, limit=SMALL_LIMIT, progress=False)
    Session(out).distill(max_concepts=20)
    return out


@pytest.fixture
def workspace(prepared_workspace, tmp_path) -> Path:
    """A private copy of the prepared workspace that a test may modify."""
    dst = tmp_path / "ws"
    shutil.copytree(prepared_workspace, dst)
    return dst


def pytest_collection_modifyitems(config, items):
    """Tests marked ``clip`` need the clip extra; without it they are skipped, not failed.

    The default install has no open_clip/torchvision: ``make test`` runs these in .venv-clip.
    """
    import importlib.util

    if importlib.util.find_spec("open_clip") and importlib.util.find_spec("torchvision"):
        return
    skip = pytest.mark.skip(reason="needs the clip extra (pip install 'inficond[clip]'); make test runs it in .venv-clip")
    for item in items:
        if item.get_closest_marker("clip"):
            item.add_marker(skip)
