"""The Upload Wizard contract: parse and validate a predict request, shape its response."""

from __future__ import annotations

import binascii
from base64 import b64decode
from dataclasses import dataclass
from typing import Any

import orjson
import pybase64
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    ValidationError,
    model_validator,
)

from .errors import ImageError

SCORE_DECIMALS = 4
V1_ONLY = (
    "this model serves KServe's v1 protocol only: POST /v1/models/<name>:predict with "
    '{"instances": [...]}; v2 (Open Inference Protocol) inference requests are not supported'
)


class InstanceModel(BaseModel):
    """One file to score. Unknown keys are ignored; `filename` is only echoed back."""

    model_config = ConfigDict(extra="ignore")

    filename: StrictStr = Field(min_length=1)
    target: StrictStr
    url: StrictStr | None = None
    image: StrictStr | None = None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> InstanceModel:
        if (self.url is None) == (self.image is None):
            raise ValueError("give exactly one of 'url' or 'image'")
        return self


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="ignore")

    instances: list[InstanceModel] = Field(min_length=1)
    debug: StrictBool = False


@dataclass(frozen=True)
class Instance:
    filename: str
    target: str
    url: str | None
    image_bytes: bytes | None  # decoded from base64; None for URL instances


@dataclass(frozen=True)
class PredictRequest:
    instances: list[Instance]
    debug: bool


def parse_request(
    payload: dict[str, Any] | bytes | str, max_instances: int, known_targets: tuple[str, ...]
) -> PredictRequest:
    """Validate the whole request, or raise InvalidInput naming the field and instance."""
    body = _as_json_object(payload)
    instances = body.get("instances")
    if isinstance(instances, list) and len(instances) > max_instances:
        raise InvalidInput(
            f"instances: {len(instances)} instances given, at most {max_instances} allowed"
        )
    try:
        request = RequestModel.model_validate(body)
    except ValidationError as error:
        raise InvalidInput(_describe(error)) from None
    parsed = []
    for index, instance in enumerate(request.instances):
        if instance.target not in known_targets:
            raise InvalidInput(
                f"instances[{index}].target: unknown target {instance.target!r}; "
                f"known: {', '.join(known_targets)}"
            )
        image_bytes = None if instance.image is None else decode_base64(instance.image, index)
        parsed.append(Instance(instance.filename, instance.target, instance.url, image_bytes))
    return PredictRequest(parsed, request.debug)


def _as_json_object(payload: dict[str, Any] | bytes | str) -> dict[str, Any]:
    """KServe parses JSON bodies sent as application/json; anything else arrives as bytes.
    A v2 infer request (REST or gRPC) arrives as KServe's InferRequest."""
    if isinstance(payload, InferRequest):
        raise InvalidInput(V1_ONLY)
    if isinstance(payload, (bytes, bytearray, str)):
        try:
            payload = orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            raise InvalidInput(f"the request body is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise InvalidInput("the request body must be a JSON object with an 'instances' list")
    return payload


def _describe(error: ValidationError) -> str:
    """'instances[3].filename: String should have at least 1 character' style messages."""
    problems = []
    for detail in error.errors():
        location = ""
        for part in detail["loc"]:
            location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else part)
        problems.append(f"{location or 'body'}: {detail['msg']}")
    return "; ".join(problems)


def decode_base64(text: str, index: int) -> bytes:
    """Standard base64, padded, nothing else. pybase64's SIMD decoder is ~60x faster than the
    standard library's (2 ms per 300 KB image here), and a 50-image request is decoded on the
    event loop before any image work starts; when it refuses, the standard library decides, so
    what is accepted and every error message are exactly the standard library's."""
    try:
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        pass
    try:
        return b64decode(text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidInput(f"instances[{index}].image: invalid base64: {error}") from None


def scored_result(
    instance: Instance, scores: dict[str, float], target_class: str = "logo"
) -> dict[str, Any]:
    return {
        "filename": instance.filename,
        "target": instance.target,
        "prediction": round(float(scores[target_class]), SCORE_DECIMALS),
        "out_of_domain": round(float(scores["out_of_domain"]), SCORE_DECIMALS),
    }


def error_result(instance: Instance, error: ImageError) -> dict[str, Any]:
    return {"filename": instance.filename, "target": instance.target, "error": error.as_dict()}


def predict_response(results: list[dict[str, Any]], model_version: str) -> dict[str, Any]:
    """The answer: one result per instance, in order, and which model scored them (its JSON's
    version, else its hash's prefix), so stored scores, caches and a rolling update's two
    versions can be told apart."""
    return {"predictions": results, "model_version": model_version}


__all__ = [
    "Instance",
    "PredictRequest",
    "error_result",
    "parse_request",
    "predict_response",
    "scored_result",
]
