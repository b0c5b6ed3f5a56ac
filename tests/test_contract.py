"""The request contract in process (contract.py): what parse_request accepts, every whole-request
refusal (InvalidInput, answered as HTTP 400 by KServe) with the message the README promises, and
the result builders. The wiring to HTTP (status codes, per-instance errors from the real image
pipeline) stays end to end in test_predict_api.py."""

from __future__ import annotations

import base64
import binascii
import json

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from model_server.logo_detection.contract import (
    SCORE_DECIMALS,
    V1_ONLY,
    Instance,
    PredictRequest,
    error_result,
    parse_request,
    predict_response,
    scored_result,
)
from model_server.logo_detection.errors import ErrorType, ImageError
from model_server.logo_detection.settings import Settings

# What model.py passes: the configured limit (documented default 50) and the one target class.
MAX_INSTANCES = Settings.model_fields["max_instances"].default
TARGETS = ("logo",)
PNG_HEADER = b"\x89PNG\r\n\x1a\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def item(filename: str = "a.png", **fields: object) -> dict:
    """One instance: a base64 image unless `url` or `image` is given (None drops the key)."""
    fields.setdefault("target", "logo")
    if "url" not in fields:
        fields.setdefault("image", b64(PNG_HEADER))
    return {"filename": filename, **{k: v for k, v in fields.items() if v is not None}}


def parse(payload: object, max_instances: int = MAX_INSTANCES) -> PredictRequest:
    return parse_request(payload, max_instances, TARGETS)


def refusal(payload: object, max_instances: int = MAX_INSTANCES) -> str:
    """The whole-request error message (what the 400 answer's "error" carries)."""
    with pytest.raises(InvalidInput) as refused:
        parse(payload, max_instances)
    assert str(refused.value) == refused.value.reason
    return str(refused.value)


# --- What is accepted ------------------------------------------------------------------------


def test_the_documented_default_limit_is_fifty():
    assert MAX_INSTANCES == 50


def test_a_base64_and_a_url_instance_are_parsed_in_order():
    image = PNG_HEADER + bytes(range(256))
    request = parse(
        {
            "instances": [
                item("Cambia_logo.png", image=b64(image)),
                item("x.jpg", url="https://upload.wikimedia.org/x.jpg"),
            ]
        }
    )
    assert request == PredictRequest(
        [
            Instance("Cambia_logo.png", "logo", None, image),
            Instance("x.jpg", "logo", "https://upload.wikimedia.org/x.jpg", None),
        ],
        debug=False,
    )


@pytest.mark.parametrize("encode", [json.dumps, lambda body: json.dumps(body).encode()])
def test_a_json_body_as_text_or_bytes_parses_like_the_object(encode):
    """KServe hands over a dict for application/json and the raw bytes for anything else."""
    body = {"instances": [item("a.png"), item("b.png", url="https://h/b.png")], "debug": True}
    assert parse(encode(body)) == parse(body)
    assert parse(bytearray(json.dumps(body).encode())) == parse(body)


def test_fifty_instances_keep_their_order_and_duplicate_filenames():
    images = [PNG_HEADER + i.to_bytes(2, "big") for i in range(MAX_INSTANCES)]
    body = {"instances": [item(f"file-{i % 7}.png", image=b64(d)) for i, d in enumerate(images)]}
    request = parse(body)
    assert [i.filename for i in request.instances] == [f"file-{i % 7}.png" for i in range(50)]
    assert [i.image_bytes for i in request.instances] == images


def test_unknown_keys_are_ignored_at_both_levels():
    body = {
        "instances": [item("a.png", width=3, extra={"x": 1})],
        "parameters": {"anything": True},
    }
    request = parse(body)
    assert request.instances == [Instance("a.png", "logo", None, PNG_HEADER)]


@pytest.mark.parametrize(("debug", "expected"), [(True, True), (False, False), (None, False)])
def test_debug_is_an_optional_boolean(debug, expected):
    body = {"instances": [item()]}
    if debug is not None:
        body["debug"] = debug
    assert parse(body).debug is expected


def test_a_null_source_counts_as_absent():
    body = {"filename": "a", "target": "logo", "url": "https://h/a.png", "image": None}
    request = parse({"instances": [body]})
    assert request.instances[0].url == "https://h/a.png"
    assert request.instances[0].image_bytes is None


def test_per_instance_problems_are_not_the_parsers_business():
    """Bytes that are no image, an empty image, a URL no policy allows: all parse; each becomes
    an error in its own result later, never a failed request."""
    request = parse(
        {
            "instances": [
                item("text.txt", image=b64(b"hello, not an image")),
                item("empty.png", image=""),
                item("elsewhere.jpg", url="ftp://example.org/image.jpg"),
                item("relative.jpg", url="not even a URL"),
            ]
        }
    )
    assert [i.image_bytes for i in request.instances] == [b"hello, not an image", b"", None, None]
    urls = [i.url for i in request.instances]
    assert urls == [None, None, "ftp://example.org/image.jpg", "not even a URL"]


def test_the_instance_limit_comes_from_the_caller():
    assert len(parse({"instances": [item()] * 2}, max_instances=2).instances) == 2
    assert refusal({"instances": [item()] * 3}, max_instances=2) == (
        "instances: 3 instances given, at most 2 allowed"
    )


# --- Whole-request refusals ------------------------------------------------------------------


def test_fifty_one_instances_are_refused_naming_the_limit():
    message = refusal({"instances": [item(f"f{i}.png") for i in range(MAX_INSTANCES + 1)]})
    assert message == "instances: 51 instances given, at most 50 allowed"


def test_the_count_is_checked_before_each_instance():
    """Too many instances is the answer even when they are malformed too."""
    assert refusal({"instances": [5] * 51}) == "instances: 51 instances given, at most 50 allowed"


@pytest.mark.parametrize("body", [b"not json", b"", b"\xff\xfe", "{'instances': []}", b'{"a": 1'])
def test_a_body_that_is_not_json_is_refused(body):
    assert refusal(body).startswith("the request body is not valid JSON: ")


@pytest.mark.parametrize("body", [[1, 2], "[1, 2]", b"null", b'"instances"', b"3", []])
def test_a_body_that_is_not_an_object_is_refused(body):
    assert refusal(body) == "the request body must be a JSON object with an 'instances' list"


def test_a_v2_infer_request_is_refused_naming_the_v1_route():
    v2 = InferRequest("logo-detection", [InferInput("input-0", [1], "BYTES", ["x"])])
    assert refusal(v2) == V1_ONLY
    assert "/v1/models/<name>:predict" in V1_ONLY


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "instances: Field required"),
        ({"inputs": []}, "instances: Field required"),
        ({"instances": None}, "instances: Input should be a valid list"),
        ({"instances": "x"}, "instances: Input should be a valid list"),
        ({"instances": {"0": {}}}, "instances: Input should be a valid list"),
        ({"instances": []}, "instances: List should have at least 1 item after validation, not 0"),
    ],
)
def test_missing_empty_or_non_list_instances_are_refused(body, expected):
    assert refusal(body) == expected


@pytest.mark.parametrize(
    ("instance", "expected"),
    [
        (5, "instances[0]: Input should be a valid dictionary or instance of InstanceModel"),
        ({"target": "logo", "image": "aGk="}, "instances[0].filename: Field required"),
        (item(""), "instances[0].filename: String should have at least 1 character"),
        (item(3), "instances[0].filename: Input should be a valid string"),
        (item(None), "instances[0].filename: Input should be a valid string"),
        ({"filename": "a", "image": "aGk="}, "instances[0].target: Field required"),
        (item(target=1), "instances[0].target: Input should be a valid string"),
        (item(target="cat"), "instances[0].target: unknown target 'cat'; known: logo"),
        (item(target="Logo"), "instances[0].target: unknown target 'Logo'; known: logo"),
        (item(url=5), "instances[0].url: Input should be a valid string"),
        (item(image=7), "instances[0].image: Input should be a valid string"),
        (
            item(url="https://h/a.png", image="aGk="),
            "instances[0]: Value error, give exactly one of 'url' or 'image'",
        ),
        (
            {"filename": "a", "target": "logo"},
            "instances[0]: Value error, give exactly one of 'url' or 'image'",
        ),
        (
            {"filename": "a", "target": "logo", "url": None, "image": None},
            "instances[0]: Value error, give exactly one of 'url' or 'image'",
        ),
    ],
)
def test_a_bad_instance_refuses_the_request_naming_its_field(instance, expected):
    message = refusal({"instances": [instance]})
    assert message.startswith(expected), message


def test_a_field_error_names_the_index_of_the_instance():
    body = {"instances": [item("a"), item("b"), item("c", target="cat"), item("d")]}
    assert refusal(body) == "instances[2].target: unknown target 'cat'; known: logo"
    body = {"instances": [item("a"), item(""), item("c")]}
    assert refusal(body).startswith("instances[1].filename: ")


def test_every_field_error_is_named_at_once():
    body = {"instances": [{"target": "logo", "image": "aGk="}, item("b"), item("c", target=2)]}
    assert refusal(body).split("; ") == [
        "instances[0].filename: Field required",
        "instances[2].target: Input should be a valid string",
    ]


@pytest.mark.parametrize("debug", ["yes", "true", 1, 0, None, []])
def test_debug_must_be_a_json_boolean(debug):
    assert refusal({"instances": [item()], "debug": debug}) == (
        "debug: Input should be a valid boolean"
    )


@pytest.mark.parametrize(
    "text",
    [
        "!!notbase64!!",
        "aGk",  # padding missing
        "aGk=\n",  # whitespace
        "aG k=",
        "a-_=",  # the URL-safe alphabet
        "data:image/png;base64,aGk=",
        "aGk=aGk=",  # padding in the middle
    ],
)
def test_invalid_base64_refuses_the_request_with_the_standard_librarys_reason(text):
    try:
        base64.b64decode(text, validate=True)
    except binascii.Error as error:
        reason = str(error)
    else:
        pytest.fail(f"the standard library accepts {text!r}")
    body = {"instances": [item("a"), item("b", image=text)]}
    assert refusal(body) == f"instances[1].image: invalid base64: {reason}"


def test_an_instance_error_refuses_the_whole_request_not_just_that_instance():
    """The good instances around a malformed one are not scored: the request is refused."""
    body = {"instances": [item("good-1"), item("bad", image="!!"), item("good-2")]}
    assert refusal(body).startswith("instances[1].image: invalid base64")


def test_the_first_bad_instance_in_order_is_named():
    """Target and base64 are checked instance by instance, in request order."""
    body = {"instances": [item("a"), item("b", image="!!"), item("c", target="cat")]}
    assert refusal(body).startswith("instances[1].image: ")
    body = {"instances": [item("a"), item("b", target="cat"), item("c", image="!!")]}
    assert refusal(body).startswith("instances[1].target: ")


# --- The result builders ---------------------------------------------------------------------


def test_a_scored_result_rounds_to_four_decimals_and_echoes_the_instance():
    instance = Instance("Cambia_logo.png", "logo", None, PNG_HEADER)
    scores = {"out_of_domain": np.float32(0.00186543), "logo": np.float32(0.99813457)}
    result = scored_result(instance, scores)
    assert result == {
        "filename": "Cambia_logo.png",
        "target": "logo",
        "prediction": 0.9981,
        "out_of_domain": 0.0019,
    }
    assert SCORE_DECIMALS == 4
    assert all(type(result[k]) is float for k in ("prediction", "out_of_domain"))
    json.dumps(result)  # plain JSON types, no numpy scalars


def test_a_scored_result_reads_the_named_target_class():
    instance = Instance("x", "logo", "https://h/x", None)
    scores = {"out_of_domain": 0.25, "logo": 0.5, "other": 0.25}
    assert scored_result(instance, scores, "other")["prediction"] == 0.25
    assert scored_result(instance, scores)["prediction"] == 0.5


def test_an_error_result_carries_type_and_message_and_no_scores():
    instance = Instance("missing.jpg", "logo", "https://h/missing.jpg", None)
    error = ImageError(ErrorType.FETCH_FAILED, "the server answered HTTP 404")
    assert error_result(instance, error) == {
        "filename": "missing.jpg",
        "target": "logo",
        "error": {"type": "fetch_failed", "message": "the server answered HTTP 404"},
    }


def test_the_response_names_the_model_beside_the_predictions():
    """The PHP client reads `predictions` only; `model_version` is a sibling it ignores."""
    scored = scored_result(
        Instance("a.png", "logo", None, PNG_HEADER), {"out_of_domain": 0.25, "logo": 0.75}
    )
    failed = error_result(
        Instance("b.png", "logo", "https://h/b.png", None),
        ImageError(ErrorType.FETCH_FAILED, "the server answered HTTP 404"),
    )
    response = predict_response([scored, failed], "20261128125907")
    assert response == {"predictions": [scored, failed], "model_version": "20261128125907"}
    assert json.loads(json.dumps(response)) == response


def test_the_error_types_are_the_documented_set():
    assert {e.value for e in ErrorType} == {
        "url_not_allowed",
        "fetch_failed",
        "too_large",
        "unsupported_format",
        "decode_failed",
        "overloaded",
        "internal_error",
    }
