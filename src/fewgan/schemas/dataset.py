"""One entry of params/datasets.yaml, after params/dataset_defaults.yaml has been merged under it.

Every key is required in the resolved entry (the defaults file supplies what an entry leaves out);
`additionalProperties: false` everywhere, so a typo is an error. Source paths are relative to one of
two roots (`source.root`): `repo` (the working directory) or `shared_data` (env FEWGAN_SHARED_DATA >
params shared_data_root > ../shared/data); see fewgan.data.schema."""

from fewgan.schemas import strict

#: Resolutions fewgan's models support: powers of two from 32 to 1024.
RESOLUTIONS = [32, 64, 128, 256, 512, 1024]

_SHA256 = {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"}
_PATHS = {"oneOf": [{"type": "string", "minLength": 1},
                    {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}]}
_SOURCE = strict({
    "kind": {"enum": ["folder", "zip", "url", "synthetic"]},
    "root": {"enum": ["repo", "shared_data"]},
    "path": {"type": ["string", "null"]},
    "url": {"type": ["string", "null"]},
    "sha256": _SHA256,
    "subdir": {"type": ["string", "null"], "description": "folder inside the folder/archive that holds the images"},
    "count": {"type": ["integer", "null"], "minimum": 1, "maximum": 100000},
    "seed": {"type": ["integer", "null"]},
})
# documentation-only keys an entry may add to its source block
_SOURCE["properties"].update({"layout": {"type": "string", "description": "expected layout (documentation)"},
                              "note": {"type": "string"}})

DATASET_SCHEMA = strict({
    "description": {"type": "string"},
    "domain": {"type": "string", "description": "what the images show, for the report"},
    "synthetic": {"type": "boolean"},
    "source": _SOURCE,
    "mode": {"enum": ["face", "center", "pad", "none"]},
    "landmarks": {"oneOf": [
        {"type": "null"},
        {"type": "object", "additionalProperties": False, "required": ["format", "path"],
         "properties": {"format": {"enum": ["celeba", "dlib_xml", "json"]}, "path": _PATHS,
                        "missing_images": {"enum": ["error", "warn"]}}},
    ]},
    "detector": {"type": ["string", "null"], "pattern": "^[a-z][a-z0-9_]*$"},
    "resolution": {"enum": RESOLUTIONS},
    "shots": {"type": ["integer", "null"], "minimum": 2},
    "min_images": {"type": "integer", "minimum": 2},
    "split": strict({
        "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        "seed": {"type": ["integer", "null"]},
        "method": {"enum": ["rank", "threshold"],
                   "description": "rank (default): exactly max(1, floor((1 - ratio) n + 1/2)) test images, per class "
                                  "with classes; adding one image moves at most one existing image. threshold: "
                                  "test iff hash >= ratio; no existing image ever moves, the test count is binomial"},
    }),
    "background": {"type": "array", "minItems": 3, "maxItems": 3,
                   "items": {"type": "integer", "minimum": 0, "maximum": 255}},
    "dedup": strict({
        "exact": {"type": "boolean"},
        "phash_max_distance": {"type": ["integer", "null"], "minimum": 0, "maximum": 64},
    }),
    "min_face_fraction": {"type": "number", "minimum": 0, "maximum": 16},
    "max_pixels": {"type": "integer", "minimum": 1},
    "max_extract_bytes": {"type": "integer", "minimum": 1},
    "align": strict({
        "supersample": {"type": "integer", "minimum": 1, "maximum": 8},
        "padding": {"type": "boolean"},
    }),
    "classes": strict({
        "from": {"enum": ["none", "subfolder", "csv"],
                 "description": "where each image's class comes from: none, its first sub-folder, or a CSV"},
        "csv": {"type": ["string", "null"], "minLength": 1,
                "description": "with from: csv, the labels file (columns file,class) relative to the image folder"},
    }),
    "translation": strict({
        "kind": {"enum": ["none", "domains", "edges"],
                 "description": "none | domains (unpaired: two classes are domains A and B) | edges (paired: A = "
                                "deterministic edge map of each image, B = the image; fewgan.data.pairs)"},
        "domains": {"oneOf": [{"type": "null"},
                              {"type": "array", "minItems": 2, "maxItems": 2, "uniqueItems": True,
                               "items": {"type": "string", "minLength": 1}}],
                    "description": "kind domains: the class names [A, B]"},
        "edge_fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1,
                          "description": "kind edges: the fraction of each image's pixels drawn as edges"},
    }),
})
