"""Structured-output extraction (engine/outputs.py): whole text → last fenced block → last
top-level object that parses. Linear in the reply's length (DESIGN §10.1): the large inputs
below take the old backward brace matcher minutes, far past the per-test timeout."""

from __future__ import annotations

import json

import pytest

from smithers.engine.outputs import extract_json


def test_whole_text_and_fenced_blocks_win_over_loose_objects() -> None:
    assert extract_json('  {"a": 1}  ') == {"a": 1}
    assert extract_json("[1, 2]") == [1, 2]
    fenced = 'Draft: {"a": 0}\n```json\n{"a": 1}\n```\nthen\n```json\n{"a": 2}\n```\nbye {"a": 3'
    assert extract_json(fenced) == {"a": 2}


def test_last_top_level_object_in_prose() -> None:
    assert extract_json('first {"a": 1} then {"b": {"c": 2}} done.') == {"b": {"c": 2}}
    # a broken object before the answer does not hide it, nor does a quote inside one
    assert extract_json('use {key: value} or {"x": "oops} and finally {"ok": true}.') == {"ok": True}
    # an answer left open: the last complete object inside it is the last that parses
    assert extract_json('{"result": {"score": 5}') == {"score": 5}


def test_escaped_backslashes_in_strings() -> None:
    text = 'The path is: {"p": "C:\\\\dir\\\\"} as asked.'
    assert json.loads('{"p": "C:\\\\dir\\\\"}') == {"p": "C:\\dir\\"}
    assert extract_json(text) == {"p": "C:\\dir\\"}
    assert extract_json('x {"q": "say \\"hi\\" {", "n": 1} y') == {"q": 'say "hi" {', "n": 1}


def test_no_object_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no JSON object"):
        extract_json("just words, a { and a } but no object")


@pytest.mark.timeout(10)
def test_many_closing_braces_parse_in_linear_time() -> None:
    with pytest.raises(ValueError):
        extract_json("}" * 200_000)
    assert extract_json('{"a": 1}' + "}" * 200_000) == {"a": 1}


@pytest.mark.timeout(10)
def test_one_megabyte_reply() -> None:
    code = "if (x) { y(\"}\"); } else { z = {k: 1}; }\n"
    reply = '{"draft": true}\n' + code * (1_000_000 // len(code)) + 'Answer: {"ok": true, "n": [1, 2, 3]}\nThanks }'
    assert len(reply) > 1_000_000
    assert extract_json(reply) == {"ok": True, "n": [1, 2, 3]}
    # the answer first, then a megabyte of code listing full of unmatched braces
    listing = "  }\n  x = y } z\n"
    reply = 'Answer: {"ok": true}\n' + listing * (1_000_000 // len(listing))
    assert extract_json(reply) == {"ok": True}


@pytest.mark.timeout(10)
def test_adversarial_inputs_stay_linear() -> None:
    broken = '{"a": "x", "b": [1, 2, 3], oops ' * 30_000
    with pytest.raises(ValueError):
        extract_json(broken)
    deep = '{"a": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, ' * 20_000
    with pytest.raises(ValueError):
        extract_json(deep + ' {"no": ')
    nested = '{"a":' * 200 + "1" + "}" * 200
    assert extract_json("text " + nested + " text") == json.loads(nested)
    too_deep = '{"a":' * 50_000 + "1" + "}" * 50_000  # deeper than the decoder recurses
    inner = extract_json(too_deep)  # not a RecursionError: the innermost levels that parse
    assert isinstance(inner, dict) and "a" in inner
