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


# The OpenAI chat and image endpoints answer once their job has run, and this service runs none: they are fuzzed
# below on a started service.
WAITING = ("/v1/chat/completions", "/v1/images/generations")
schema = schemathesis.pytest.from_fixture("fuzz_schema").exclude(path=list(WAITING), method="POST")


@pytest.fixture(scope="module")
def fuzz_schema(app):
    # A request can match the schema and still name media that does not exist or does not decode (a 422 naming
    # the field): the schema cannot say which files exist, so 422 counts as a considered answer to valid data.
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=_config())


@pytest.fixture(scope="module")
def waiting_schema(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=_config(mode="negative"))


def _config(mode: str = "all"):
    # The OpenAI-compatible paths answer such refusals with OpenAI's 400 instead of the native 422.
    accepted = ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
    return schemathesis.config.SchemathesisConfig.from_dict({
        "generation": {"mode": mode},
        "checks": {"positive_data_acceptance": {"expected-statuses": accepted}},
        "operations": [
            {"include-path-regex": "^/v1/(models|chat|images|videos)",
             "checks": {"positive_data_acceptance": {"expected-statuses": accepted + ["400"]}}},
        ],
    })


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_service_answers_as_its_openapi_document_says(case):
    # Every check runs, schema-invalid data included (numbers are strict: `"steps": true` is a 422).
    response = case.call_and_validate()
    if response.status_code >= 400:
        assert "message" in response.json()["error"], response.text


waiting = schemathesis.pytest.from_fixture("waiting_schema").include(path=list(WAITING), method="POST")


@waiting.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_waiting_openai_endpoints_refuse_what_their_document_refuses(case):
    # Only data the document refuses: none of it may queue a job (this service would never answer it).
    response = case.call_and_validate()
    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}, response.text
