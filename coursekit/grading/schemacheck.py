"""nbgrader's metadata schema, checked once per process instead of once per cell.

nbgrader validates the nbgrader metadata of every cell with `jsonschema.validate`, which
first checks the schema itself against jsonschema's metaschema: about 0.4 s of each
notebook graded (several reads and writes of 90 cells), for a schema that is one file of
nbgrader's and never changes. Here each distinct schema is checked once, and every cell
is then validated exactly as `jsonschema.validate` does it (the same validator class, the
same best-matching error raised). nbgrader_config.py installs it.
"""
import functools
import json

import jsonschema
from jsonschema.exceptions import best_match

from coursekit.grading import nbgrader_compat


@functools.lru_cache(maxsize=8)
def _validator(schema_text):
    schema = json.loads(schema_text)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


class SchemaCheckedOnce:
    """What nbgrader's metadata validators use of the jsonschema module."""

    def __getattr__(self, name):
        return getattr(jsonschema, name)

    @staticmethod
    def validate(instance, schema, cls=None, *args, **kwargs):
        if cls is not None or args or kwargs:
            return jsonschema.validate(instance, schema, cls, *args, **kwargs)
        error = best_match(_validator(json.dumps(schema, sort_keys=True))
                           .iter_errors(instance))
        if error is not None:
            raise error


def install():
    from nbgrader.nbgraderformat import common

    if not isinstance(common.jsonschema, SchemaCheckedOnce):
        nbgrader_compat.replace("nbgrader.nbgraderformat.common", "jsonschema",
                                SchemaCheckedOnce())
