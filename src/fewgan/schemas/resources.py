"""params/resources.yaml: threads per stage and the CPU allocator (fewgan.allocator)."""

from fewgan.schemas import strict

RESOURCES_SCHEMA = strict({
    "threads": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1}},
    "cpu_allocator": {"enum": ["retain", "system"],
                      "description": "retain: glibc keeps freed memory for reuse (fewgan.allocator)"},
})
