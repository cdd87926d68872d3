"""Job parameters: the request models follow the options dataclasses, and numbers are strict."""

import dataclasses

import pytest

from core import ImageOptions, StoryOptions, TextOptions, VideoOptions, editing_options
from studio.schemas import PARAMS

OPTIONS = {  # kind -> the options its sampling fields come from
    "t2i": ImageOptions(), "inpaint": editing_options(), "edit": editing_options(), "extrapolate": editing_options(),
    "t2v": VideoOptions(), "continue_video": VideoOptions(), "storyboard": StoryOptions(),
    "caption": TextOptions(), "qa": TextOptions(),
}


@pytest.mark.parametrize("kind", sorted(OPTIONS))
def test_request_fields_are_the_options_fields(kind):
    options = OPTIONS[kind]
    fields = {f.name: f for f in dataclasses.fields(options)}
    shared = set(PARAMS[kind].model_fields) & set(fields)
    assert shared, kind
    schema = PARAMS[kind].model_json_schema()["properties"]
    for name in shared:
        meta = fields[name].metadata
        assert schema[name]["default"] == getattr(options, name), (kind, name)
        declared = str(fields[name].type)
        if declared.endswith(" | None"):  # an optional option: a number or null
            value = [s for s in schema[name]["anyOf"] if s["type"] != "null"]
            assert {"type": "null"} in schema[name]["anyOf"] and len(value) == 1, (kind, name)
            spec = value[0]
        else:
            spec = schema[name]
        assert spec.get("minimum") == meta.get("ge") and spec.get("exclusiveMinimum") == meta.get("gt")
        assert spec.get("maximum") == meta.get("cap", meta.get("le")), (kind, name)
        assert spec["type"] == {"int": "integer", "float": "number"}[declared.removesuffix(" | None")]


def test_the_options_check_what_they_hold():
    with pytest.raises(ValueError, match="steps must be an integer"):
        ImageOptions(steps=True)
    with pytest.raises(ValueError, match="guidance_scale must be a finite number"):
        ImageOptions(guidance_scale=float("nan"))
    with pytest.raises(ValueError, match="steps must be >= 1"):
        VideoOptions(steps=0)
    assert VideoOptions(steps=3000).steps == 3000  # the service's cap is not a validity bound
