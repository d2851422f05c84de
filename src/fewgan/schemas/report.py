"""params/report.yaml: the benchmark report (fewgan.report)."""

from fewgan.schemas import strict

REPORT_SCHEMA = strict({
    "title": {"type": "string", "minLength": 1},
    # show FastGAN's published FID table (REFERENCE.md section 1) in its own table, for reference only
    "include_paper_table": {"type": "boolean"},
    # at most this many image grids (samples, reconstructions) are embedded; the rest are linked
    "image_grid_max": {"type": "integer", "minimum": 0},
    # decimals shown for metric values in README.md / index.html (summary.csv keeps full precision)
    "decimals": {"type": "integer", "minimum": 0, "maximum": 8},
    # training-FLOP budget of the "at equal compute" table; null: the smallest total among a dataset's runs
    "flops_budget": {"oneOf": [{"type": "null"}, {"type": "number", "exclusiveMinimum": 0}]},
})
