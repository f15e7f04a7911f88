"""The API server every e2e module shares: one per session, since each takes seconds to start."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.envtest import Cluster, started


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every e2e test on one worker: each worker starts its own API server, and one is enough."""
    for item in items:
        if "tests/e2e/" in item.nodeid:
            item.add_marker(pytest.mark.xdist_group("envtest"))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from started(tmp_path_factory.mktemp("envtest"))
