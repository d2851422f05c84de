"""What each model declares as plain data, found by discovery (no torch, no model code imported).

A model is one folder `src/fewgan/models/<name>/` (see docs/DESIGN.md, "Add a model"):

    <name>/spec.py    SCHEMA (its params block, params/models/<name>.yaml), CAPABILITIES and, for a model
                      whose discriminator uses a pretrained feature network, FEATURE_NETWORK; stdlib only
    <name>/model.py   the GANModel subclass, registered with @register_model("<name>")
    <name>/nets.py    its networks (optional)
    <name>/__init__.py  a docstring (keep it free of imports: params tooling imports the package)

and its defaults in `params/models/<name>.yaml`. Nothing else is edited: `model_specs()` lists every folder
with a `spec.py`, `fewgan.models.build_model` imports `<name>.model` on demand, `fewgan params` validates the
block against SCHEMA, and the stage table reads CAPABILITIES to decide which stages a cell has.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any

#: DiffAugment policy: "" or a comma-separated list of color / translation / cutout (no spaces); `cutout:R`
#: is a cutout of size ratio 0 < R < 1 (fewgan.train.diffaugment; Projected GAN: cutout:0.2).
_POLICY_NAME = r"(color|translation|cutout(:0\.[0-9]*[1-9][0-9]*)?)"
POLICY_PATTERN = rf"^({_POLICY_NAME}(,{_POLICY_NAME})*)?$"
BETAS = {"type": "array", "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
         "minItems": 2, "maxItems": 2}
POS_INT = {"type": "integer", "minimum": 1}
#: the format tag of training snapshots (written by fewgan.train.checkpoint, read by registry.load_snapshot);
#: here, torch-free, so that light stages (select) can check a file without loading model code
SNAPSHOT_FORMAT = "fewgan.snapshot/1"

#: what a model can do; the stages ask for these instead of asking for model names
CAPABILITIES = {
    "latents": "generates images from latent codes (score, select, evaluate sample it)",
    "translates": "maps input images to output images (image-to-image translation; score, select, evaluate read its "
                  "translations, invert its cycle / paired reconstruction errors)",
    "conditional": "uses class labels when the dataset has classes",
    "invertible": "a latent can be optimised to reproduce a given image (the invert stage, FastGAN Table 5)",
    "truncation": "has a truncation trick for sampling (GANModel.truncated_latents / generate_truncated)",
    "mixing": "takes part of an image's style from a second latent (GANModel.generate_mixed)",
}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    schema: dict[str, Any]
    capabilities: frozenset[str]
    module: str  # the module that registers the GANModel ("fewgan.models.<name>.model")
    #: the pretrained feature extractor (fewgan.metrics.inputs.EXTRACTORS name, e.g. "effnet-lite0") whose
    #: network the model's discriminator trains on (spec.py FEATURE_NETWORK; Projected GAN). A distance in
    #: those features favours the model (Kynkaanniemi et al. 2023): it never selects the model's snapshots or
    #: ranks it, and the report flags every such number of it.
    feature_network: str | None = None


def model_specs() -> dict[str, ModelSpec]:
    """{model name: its spec}, one per sub-package of fewgan.models that has a spec.py."""
    import fewgan.models as pkg

    found = {}
    for m in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if not m.ispkg or m.name.startswith("_"):
            continue
        try:
            spec = importlib.import_module(f"{pkg.__name__}.{m.name}.spec")
        except ModuleNotFoundError as e:
            if e.name == f"{pkg.__name__}.{m.name}.spec":
                continue  # a helper package, not a model
            raise
        caps = frozenset(getattr(spec, "CAPABILITIES", ()))
        unknown = sorted(caps - set(CAPABILITIES))
        if unknown:
            raise ValueError(f"src/fewgan/models/{m.name}/spec.py: unknown capabilities {unknown}; "
                             f"known: {sorted(CAPABILITIES)}")
        if not hasattr(spec, "SCHEMA"):
            raise ValueError(f"src/fewgan/models/{m.name}/spec.py defines no SCHEMA (the JSON schema of "
                             f"params/models/{m.name}.yaml)")
        feature_network = getattr(spec, "FEATURE_NETWORK", None)
        if feature_network is not None and not isinstance(feature_network, str):
            raise ValueError(f"src/fewgan/models/{m.name}/spec.py: FEATURE_NETWORK must be an extractor name "
                             f"(a string), got {feature_network!r}")
        found[m.name] = ModelSpec(m.name, spec.SCHEMA, caps, f"{pkg.__name__}.{m.name}.model", feature_network)
    return found


def model_schemas() -> dict[str, dict[str, Any]]:
    """{model name: schema of its params block}."""
    return {name: s.schema for name, s in model_specs().items()}


def models_with(capability: str, models: list[str]) -> list[str]:
    """The models of `models` (in order) that declare `capability`."""
    if capability not in CAPABILITIES:
        raise KeyError(f"unknown capability {capability!r}; known: {sorted(CAPABILITIES)}")
    specs = model_specs()
    unknown = [m for m in models if m not in specs]
    if unknown:
        raise KeyError(f"models {unknown} have no folder src/fewgan/models/<name>/ with a spec.py; known: {sorted(specs)}")
    return [m for m in models if capability in specs[m].capabilities]


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
