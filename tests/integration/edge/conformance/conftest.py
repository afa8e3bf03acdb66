"""One edge for the whole conformance suite, with permessage-deflate on.

Clients that offer no extension get plain frames from it, so the same edge serves
the plain sections (1-7) and the compressed ones (12-13). The request rate is raised
so cases that send many messages measure framing, not the rate limit.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Infra
from tests.integration.edge.conftest import SharedEdge, module_edge

MAX_FRAME_BYTES = 65536
MAX_FRAGMENTS = 1024


@pytest.fixture(scope="package")
def conformance_edge(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedEdge]:
    with module_edge(
        infra,
        tmp_path_factory,
        ROOMCAST_EDGE__COMPRESSION="true",
        ROOMCAST_EDGE__REQUEST_RATE="10000",
        ROOMCAST_EDGE__MAX_FRAME_BYTES=str(MAX_FRAME_BYTES),
        ROOMCAST_EDGE__MAX_FRAGMENTS=str(MAX_FRAGMENTS),
    ) as shared:
        yield shared
