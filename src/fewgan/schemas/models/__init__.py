"""One module per model, `fewgan.schemas.models.<name>`, each defining `SCHEMA` (params/models/<name>.yaml).

Plain data: importing these never imports torch or the model code. `fewgan.models` checks that every
registered model has a schema module here (tests/test_params.py)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

#: DiffAugment policy: "" or a comma-separated list of color / translation / cutout (no spaces).
POLICY_PATTERN = r"^((color|translation|cutout)(,(color|translation|cutout))*)?$"
BETAS = {"type": "array", "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
         "minItems": 2, "maxItems": 2}
POS_INT = {"type": "integer", "minimum": 1}


def model_schemas() -> dict[str, dict[str, Any]]:
    """{model name: schema of its params block}, one per module in this package."""
    return {m.name: importlib.import_module(f"{__name__}.{m.name}").SCHEMA
            for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}


def validate_block(model: str, cfg: Any) -> dict[str, Any]:
    """Validate a model's params block; raise ValueError naming params/models/<model>.yaml and the key."""
    import jsonschema

    schema = model_schemas()[model]
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(cfg), key=lambda e: list(map(str, e.path)))
    if errors:
        import difflib

        e = errors[0]
        where = ".".join(str(p) for p in e.absolute_path)
        if e.validator == "additionalProperties" and isinstance(e.instance, dict):
            extra = [k for k in e.instance if k not in e.schema.get("properties", {})]
            hint = difflib.get_close_matches(str(extra[0]), list(e.schema.get("properties", {})), n=1)
            what = (f"unknown key 'models.{model}.{extra[0]}'"
                    + (f" (did you mean '{hint[0]}'?)" if hint else f"; keys: {sorted(e.schema['properties'])}"))
        else:
            what = f"key 'models.{model}{'.' + where if where else ''}': {e.message}"
        raise ValueError(f"params/models/{model}.yaml: {what} (fix it there or in the active profile, then "
                         "re-run `fewgan params`)")
    return dict(cfg)
