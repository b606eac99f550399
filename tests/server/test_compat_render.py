"""Fast renderers of fixed-shape compat answers give exactly the bytes the general encoder gives."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simhive.server.api.compat import _ENCODER, SAVED, _saved, json_response, saved_json


def general(ids: list[int]) -> bytes:
    return _ENCODER.encode(_saved(ids)).encode("utf-8")


@given(st.lists(st.integers(min_value=0, max_value=2**63 - 1), min_size=1, max_size=5))
def test_saved_json_equals_the_encoder(ids: list[int]) -> None:
    assert saved_json(ids) == general(ids)


@pytest.mark.parametrize("ids", [[1], [9_223_372_036_854_775_807], [3, 4], [7, 7, 7]])
def test_saved_json_shape(ids: list[int]) -> None:
    data = json.loads(saved_json(ids))
    assert data["error"] == 0 and data["sms_id"] == ids[0] and data["message"] == SAVED
    assert list(data) == (["error", "sms_id", "message", "sms_ids"] if len(ids) > 1 else
                          ["error", "sms_id", "message"])  # fmt: skip
    assert data.get("sms_ids", ids) == ids


def test_json_response_sends_bytes_as_they_are_and_encodes_dicts() -> None:
    raw = json_response(saved_json([12]))
    encoded = json_response(_saved([12]))
    assert raw.body == encoded.body == general([12])
    assert raw.headers["Content-Type"] == encoded.headers["Content-Type"]
    assert raw.headers["Content-Type"] == "application/json; charset=utf-8"
