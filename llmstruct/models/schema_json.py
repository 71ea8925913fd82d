"""The JSON schema every backend hands its grammar engine: closed objects, compact JSON.

One builder for all backends, so the transformers, llama.cpp and vLLM paths constrain the
model to exactly the same language and their outputs compare one to one.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

# llguidance JSON options: no free whitespace, compact separators.
LLG_COMPACT = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}


def compact_json_schema(schema: type[BaseModel] | dict, grammar: str) -> dict:
    """The JSON schema dict handed to the grammar engine for ``grammar``.

    Every object is closed (``additionalProperties: false``). For llguidance (also what
    vLLM's ``guidance`` backend runs) the compact-JSON options are added under
    ``x-guidance`` (options already set on the model, e.g. via ``json_schema_extra``, win).
    """
    d = schema.model_json_schema() if isinstance(schema, type) else json.loads(json.dumps(schema))
    close_objects(d)
    if grammar == "llguidance":
        d["x-guidance"] = {**LLG_COMPACT, **d.get("x-guidance", {})}
    else:
        d.pop("x-guidance", None)
    return d


def close_objects(node: Any) -> None:
    """Set ``additionalProperties: false`` on every object schema that leaves it open.

    Pydantic models allow extra keys unless ``extra="forbid"``; llguidance follows the
    JSON-schema default and lets the model append extra keys without bound (outlines_core
    never does), so a babbling model runs to the token cap. Extra keys are never wanted here.
    """
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for v in node.values():
            close_objects(v)
    elif isinstance(node, list):
        for v in node:
            close_objects(v)
