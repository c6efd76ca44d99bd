"""Parametrized generic models (``PatchOp[ScimUser]``, ``ResponseParameters[ScimGroup]``), built once per process
and held for its life.

pydantic keeps the classes it builds for ``Model[Parameter]`` in a cache of weak references. Nothing else holds them
once a request is done, so every full garbage collection dropped them and the next PATCH, or the next request with
``attributes``/``excludedAttributes`` (Entra's group reads send ``excludedAttributes=members``), built them again:
1.5-5.5 ms of CPU on the event loop, which ``bench/fairness.py --stalls`` found inside a PATCH's parse. Held here, the
class is looked up in a dict.
"""

from typing import Any

_held: dict[tuple[Any, Any], Any] = {}


def parametrized(generic: Any, parameter: Any) -> Any:
    """``generic[parameter]``, the same class every time."""
    key = (generic, parameter)
    found = _held.get(key)
    if found is None:
        found = _held[key] = generic[parameter]
    return found
