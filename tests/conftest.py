"""Fixtures every folder uses: the prepared default model."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def model_dir():
    """The default preset's transformers folder (assembled from its PyPI parts by setup)."""
    from llmstruct.models.provision import prepare

    return prepare("qwen2.5-coder-0.5b")


def pytest_collection_modifyitems(config, items):
    """A test that loads the real model or starts a server must also be ``slow``, so the
    fast suite (``-m "not slow"``) never waits for one."""
    heavy = [i.nodeid for i in items
             if (i.get_closest_marker("model") or i.get_closest_marker("server")) and not i.get_closest_marker("slow")]
    if heavy:
        raise pytest.UsageError("marked model/server but not slow: " + ", ".join(heavy))
