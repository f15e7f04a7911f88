"""The API server every e2e module shares: one per session, since each takes seconds to start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.envtest import Cluster, started


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started(tmp_path_factory.mktemp("envtest"))
