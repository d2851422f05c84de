"""The JSON schemas of every params section, as plain data (no torch, no model code).

`fewgan params` validates the resolved params against `params_schema()`, so it runs in well under a
second; the stages and models reuse the same dicts. Every key of every section is required: the YAML
files in params/ are the only source of defaults (a missing key is an error naming the file, never a
value silently taken from code).

    schemas.dataset     one entry of params/datasets.yaml (after params/dataset_defaults.yaml is merged in)
    schemas.train       params/train.yaml
    schemas.evaluation  params/evaluation.yaml
    schemas.invert      params/invert.yaml
    schemas.report      params/report.yaml
    schemas.resources   params/resources.yaml
    models.<m>.spec  params/models/<m>.yaml (fewgan.models.specs: one folder per model, found by discovery)
"""

from __future__ import annotations

from typing import Any

from fewgan.names import NAME_FORBIDDEN, NAME_PATTERN

#: params sections that each come from one file params/<section>.yaml
SECTIONS = ("train", "evaluation", "invert", "report", "resources")


def strict(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An object schema whose every property is required and nothing else is allowed."""
    return {"type": "object", "additionalProperties": False, "required": list(properties),
            "properties": properties, **extra}


def params_schema() -> dict[str, Any]:
    """The JSON schema of the resolved params (params/active.yaml)."""
    from fewgan.schemas.dataset import DATASET_SCHEMA
    from fewgan.schemas.evaluation import EVALUATION_SCHEMA
    from fewgan.schemas.invert import INVERT_SCHEMA
    from fewgan.models.specs import model_schemas
    from fewgan.schemas.report import REPORT_SCHEMA
    from fewgan.schemas.resources import RESOURCES_SCHEMA
    from fewgan.schemas.train import TRAIN_SCHEMA

    name_list = {"type": "array", "minItems": 1, "uniqueItems": True,
                 "items": {"type": "string", "pattern": NAME_PATTERN, "not": {"pattern": NAME_FORBIDDEN}}}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["profile", "seed", "device", "shared_data_root", "experiment", "datasets", "models",
                     *SECTIONS],
        "properties": {
            "profile": {"type": "string", "pattern": NAME_PATTERN, "not": {"pattern": NAME_FORBIDDEN}},
            "seed": {"type": "integer", "minimum": 0},
            "device": {"type": "string", "pattern": r"^(auto|cpu|cuda(:\d+)?)$"},
            # where datasets with source.root 'shared_data' live (env FEWGAN_SHARED_DATA overrides)
            "shared_data_root": {"type": ["string", "null"]},
            # stage_models: derived by `fewgan params` from the models' capabilities (fewgan.stages.stage_models)
            "experiment": strict({"datasets": name_list, "models": name_list,
                                  "seeds": {"type": "array", "minItems": 1, "uniqueItems": True,
                                            "items": {"type": "integer", "minimum": 0}},
                                  "stage_models": {"type": "object", "additionalProperties": {
                                      "type": "array", "items": {"type": "string"}}}}),
            "datasets": {"type": "object", "additionalProperties": DATASET_SCHEMA,
                         "propertyNames": {"pattern": NAME_PATTERN, "not": {"pattern": NAME_FORBIDDEN}}},
            "models": {"type": "object", "additionalProperties": False, "properties": model_schemas()},
            "train": TRAIN_SCHEMA,
            "evaluation": EVALUATION_SCHEMA,
            "invert": INVERT_SCHEMA,
            "report": REPORT_SCHEMA,
            "resources": RESOURCES_SCHEMA,
            "_meta": {"type": "object"},
        },
    }
