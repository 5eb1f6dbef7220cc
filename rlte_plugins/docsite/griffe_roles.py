"""A griffe extension for the Python API page: reST roles in docstrings (``:func:`make```) render as code."""

from __future__ import annotations

from typing import Any

import griffe

from rlte_plugins.docsite import reference_roles


class ReferenceRoles(griffe.Extension):
    def on_instance(self, *, obj: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = reference_roles(obj.docstring.value)
