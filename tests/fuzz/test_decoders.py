"""Short runs of the decoder fuzzers (a few seconds each); `scripts/run-fuzz` runs them with a
million inputs per decoder and parser."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import simhive.agent.modem
from tests.fuzz.decoders import COUNTS, FED, TARGETS, Target, run

# Matched by name but fed another way, or not a parser of modem text.
NOT_FED = {
    "simhive.agent.modem.pdu_userdata._parse_udh",  # inside decode_incoming/decode_submit
    "simhive.agent.modem.pdu_userdata.split_text",  # splits our own text for encoding
}
PARSER_NAME = re.compile(r"^_?parse_|_to_dbm$|^_stat_of_|^split_|^decode_(incoming|submit)$")

SHORT_INPUTS = 4000


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_short_fuzz_run(target: Target) -> None:
    before = {name: COUNTS[name] for name in target.counted}
    run(target, min(COUNTS[name] for name in target.counted) + SHORT_INPUTS, 400)
    assert all(COUNTS[name] - before[name] >= SHORT_INPUTS for name in target.counted)


def test_every_reply_parser_is_fed() -> None:
    # Any function in agent/modem that parses modem text by its name must be a fuzz target.
    found = set()
    for info in pkgutil.iter_modules(simhive.agent.modem.__path__, "simhive.agent.modem."):
        module = importlib.import_module(info.name)
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == info.name and PARSER_NAME.search(name):
                found.add(f"{info.name}.{name}")
    assert len(found) >= 10
    assert found - FED - NOT_FED == set()
