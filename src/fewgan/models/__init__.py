"""Models: one folder per model (`<name>/spec.py`, `<name>/model.py`, `<name>/nets.py`), found by discovery.

Import what you need from its module, so that the stage table's code dependencies (fewgan.stages.code_deps,
read from the imports) stay exact: `fewgan.models.base` (the contract: GANModel, Phase, TrainContext,
register_model), `fewgan.models.registry` (build_model, load_snapshot, list_snapshots), `fewgan.models.specs`
(the models' declarations as plain data, no torch).
"""
