"""The seed catalog every answer test reads, and the real default model for the slow ones."""

from __future__ import annotations

import pytest
from helpers import SEEDS

from llmstruct.answer.asker import Asker
from llmstruct.answer.catalog import load_catalog


@pytest.fixture(scope="session")
def catalog():
    return load_catalog([SEEDS])


@pytest.fixture(scope="session")
def backend():
    from llmstruct.models import get_backend

    return get_backend()


@pytest.fixture(scope="session")
def asker(catalog, backend):
    return Asker(catalog, backend)
