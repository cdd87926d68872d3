"""Property-based fuzzing of the OpenAPI schema (schemathesis) with all of its conformance checks: no 5xx, and
every answer's status code, content type, headers and body are the ones the document describes.

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
    # A request can match the schema and still name media that does not exist or does not decode (a 422 naming
    # the field): the schema cannot say which files exist, so 422 counts as a considered answer to valid data.
    config = schemathesis.config.SchemathesisConfig.from_dict({"checks": {"positive_data_acceptance": {
        "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]}}})
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_service_answers_as_its_openapi_document_says(case):
    # Every check runs, schema-invalid data included (numbers are strict: `"steps": true` is a 422).
    response = case.call_and_validate()
    if response.status_code >= 400:
        assert "message" in response.json()["error"], response.text
