"""JSON Schemas of the files a user writes, generated from the config models (``msup schema study|train|space``).

The repository ships them under ``schemas/``; the study, training-config and
search-space files point at them with a ``# yaml-language-server: $schema=``
line, so YAML editors complete and check keys. A test keeps the shipped
files equal to what this module generates.
"""

from __future__ import annotations

import json
from typing import Any

from msup.config import TrainConfig
from msup.search.config.space import SpaceFile
from msup.search.config.study_file import StudyFile

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
KINDS = ("study", "train", "space")


def schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of one kind of file: a study file inlines or names the other two."""
    if kind == "train":
        return _with_dialect(TrainConfig.model_json_schema())
    if kind == "space":
        return _with_dialect(SpaceFile.model_json_schema())
    if kind != "study":
        raise ValueError(f"unknown schema {kind!r}; one of {', '.join(KINDS)}")
    study = StudyFile.model_json_schema()
    defs = study.setdefault("$defs", {})
    for key, model in (("train", TrainConfig), ("search_space", SpaceFile)):
        nested = model.model_json_schema()
        defs.update(nested.pop("$defs", {}))
        defs[model.__name__] = nested
        study["properties"][key]["anyOf"] = [{"type": "string"}, {"$ref": f"#/$defs/{model.__name__}"}]
    return _with_dialect(study)


def schema_text(kind: str) -> str:
    """The schema as the shipped file holds it."""
    return json.dumps(schema(kind), indent=2, sort_keys=True) + "\n"


def _with_dialect(body: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": SCHEMA_DIALECT, **body}
