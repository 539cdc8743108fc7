"""Fixtures for gateway tests: script files and a running gateway with a recorder list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from hgm.gateway import CallRecord, Gateway, GatewayConfig, start_gateway


@pytest.fixture
def write_script(tmp_path: Path) -> Callable[[Any], Path]:
    def write(content: Any, name: str = "script.json") -> Path:
        path = tmp_path / name
        path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
        return path

    return write


@pytest.fixture
def gateway_factory() -> Iterator[Callable[..., tuple[Gateway, list[CallRecord]]]]:
    started: list[Gateway] = []

    def start(config: GatewayConfig, backend: Any = None) -> tuple[Gateway, list[CallRecord]]:
        records: list[CallRecord] = []
        gateway = start_gateway(config, records.append, backend=backend)
        started.append(gateway)
        return gateway, records

    yield start
    for gateway in started:
        gateway.close()
