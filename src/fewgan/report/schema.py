"""JSON schema of the `report` params section (params/report.yaml)."""

from __future__ import annotations

REPORT_SCHEMA: dict = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "include_paper_table", "image_grid_max"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        # show FastGAN's published FID table (REFERENCE.md section 1) in its own table, for reference only
        "include_paper_table": {"type": "boolean"},
        # at most this many image grids (samples, reconstructions) are embedded; the rest are linked
        "image_grid_max": {"type": "integer", "minimum": 0},
        # decimals shown for metric values in README.md / index.html (summary.csv keeps full precision)
        "decimals": {"type": "integer", "minimum": 0, "maximum": 8},
    },
}
