"""The model contract: which version a model file answers with."""

from __future__ import annotations

import json

from model_server.logo_detection.model_contract import describe_model, model_version

SHA = "0123456789abcdef" * 4


def test_the_version_is_what_the_json_records():
    assert model_version({"version": "20240417132942"}, SHA) == "20240417132942"
    assert model_version({"version": 20240417132942}, SHA) == "20240417132942"


def test_without_a_recorded_version_the_hash_prefix_names_the_model():
    assert model_version({}, SHA) == "0123456789ab"
    assert model_version({"version": ""}, SHA) == "0123456789ab"
    assert model_version({"version": None}, SHA) == "0123456789ab"
    assert model_version({"version": True}, SHA) == "0123456789ab"


def test_a_model_file_carries_its_version(tmp_path):
    model = tmp_path / "model.keras"
    model.write_bytes(b"not really a model")
    unversioned = describe_model(model)
    assert unversioned.version == unversioned.sha256[:12]
    model.with_suffix(".json").write_text(json.dumps({"version": "20240417132942"}))
    assert describe_model(model).version == "20240417132942"
