"""Topology files: YAML -> raw -> resolved ``Topology``, with file and line in every error.

``load(path)`` / ``loads(text)`` (in ``load.py``) read a file; ``model.py`` holds the resolved
types, which import neither pydantic nor yaml (nor does this package's ``__init__``), so code
that only consumes a ``Topology`` does not pay for the parser.
"""
