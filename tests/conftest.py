"""Shared fixtures: the read-only reference data beside the checkout, and an isolated home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# One compiled-kernel cache for the whole session and its subprocesses, even though each
# test gets its own per-user folder below (compiling the scan kernels takes seconds).
from core.resources import user_cache_dir  # noqa: E402

os.environ.setdefault("NUMBA_CACHE_DIR", str(user_cache_dir() / "numba"))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LANDAUER_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"reference data folder {SHARED} not present (set LANDAUER_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def golden_dir(shared_dir: Path) -> Path:
    return shared_dir / "golden"


@pytest.fixture(scope="session")
def canonical_corpus(shared_dir: Path) -> Path:
    return shared_dir / "data" / "tiny_shakespeare.txt"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch) -> Path:
    """Keep runs, settings and caches of every test out of the real per-user folders."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("LANDAUER_STUDIO_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: on a busy machine, handing ops to a second thread costs more than it saves."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
