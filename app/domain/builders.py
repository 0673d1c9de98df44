"""Faster constructors for the frozen, slotted dataclasses the hot path builds per command.

A frozen dataclass's __init__ sets each field through `object.__setattr__` and is reached
through `type.__call__`; `slot_builder(cls)` returns a function with the same parameters that
creates the instance with `object.__new__` and fills each slot through its descriptor, which
takes half the time. What it returns is the same object `cls(...)` would be: same type, same
field values, still frozen (tests/unit/domain/test_builders.py compares them).

Only for slotted dataclasses whose __init__ does nothing but set the fields: no __post_init__,
no InitVar, no default_factory, every field in __init__. Anything else is refused at import.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

P = ParamSpec("P")
T = TypeVar("T")


def slot_builder(cls: Callable[P, T]) -> Callable[P, T]:
    """A function that builds `cls` from the arguments its constructor takes, only faster."""
    klass: Any = cls
    name = getattr(klass, "__name__", repr(klass))
    if not (isinstance(klass, type) and dataclasses.is_dataclass(klass)):
        msg = f"{name} is not a dataclass"
        raise TypeError(msg)
    if "__slots__" not in vars(klass):
        msg = f"{name} is not slotted: a slot builder needs slots=True"
        raise TypeError(msg)
    if hasattr(klass, "__post_init__"):
        msg = f"{name} has a __post_init__, which a slot builder would skip"
        raise TypeError(msg)
    fields = dataclasses.fields(klass)
    if [field.name for field in fields] != list(inspect.signature(klass).parameters):
        msg = f"{name}.__init__ takes other parameters than its fields (an InitVar?)"
        raise TypeError(msg)
    namespace: dict[str, object] = {"_new": object.__new__, "_cls": klass}
    params, body = [], []
    for field in fields:
        if field.default_factory is not dataclasses.MISSING:
            msg = f"{name}.{field.name} has a default_factory, which a slot builder cannot call"
            raise TypeError(msg)
        namespace[f"_set_{field.name}"] = getattr(klass, field.name).__set__
        if field.default is dataclasses.MISSING:
            params.append(field.name)
        else:
            namespace[f"_default_{field.name}"] = field.default
            params.append(f"{field.name}=_default_{field.name}")
        body.append(f"    _set_{field.name}(self, {field.name})")
    source = "\n".join(
        [f"def build({', '.join(params)}):", "    self = _new(_cls)", *body, "    return self"]
    )
    # The technique dataclasses itself uses to write __init__; the text is made of field names.
    exec(source, namespace)  # noqa: S102
    build = cast("Callable[P, T]", namespace["build"])
    build.__qualname__ = build.__name__ = f"build_{name}"
    build.__doc__ = f"A {name}, as {name}(...) builds it (see app.domain.builders)."
    return build
