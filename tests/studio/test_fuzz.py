"""Property-based fuzzing of the OpenAPI schema (schemathesis): whatever the requests, no 5xx and JSON errors.

The service is not started, so accepted jobs stay queued and the fuzzing measures the HTTP edge only.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

schemathesis = pytest.importorskip("schemathesis")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from studio.api import create_app
    from studio.service import Service, ServiceConfig
    from workflows.testing import FakeBackend

    folder = tmp_path_factory.mktemp("fuzz")
    service = Service(ServiceConfig(data_dir=folder / "data", media_root=folder, max_upload_bytes=4096), FakeBackend())
    return create_app(service, manage_service=False)


schema = schemathesis.pytest.from_fixture("fuzz_schema")


@pytest.fixture(scope="module")
def fuzz_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_service_fail(case):
    if case.path.endswith("/events"):
        case.query = {**(case.query or {}), "since": 0}
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.text)
    if response.status_code >= 400:
        assert "message" in response.json()["error"], response.text
