"""A faster ``__init__`` for the frozen, slotted dataclasses made for every add (the same instances).

A frozen dataclass sets each field in ``__init__`` with ``object.__setattr__(self, name, value)``,
which looks the slot up by name on every call. The ``__init__`` made here calls each slot's own
setter, found once: the same object, the same checks at runtime (it is still frozen afterwards:
assigning a field raises), in about two thirds of the time.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

__all__ = ["quick_init"]

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """Give ``cls`` (a frozen dataclass with slots, plain fields and defaults, no ``__post_init__``) the
    faster ``__init__``; its signature is the dataclass's own."""
    params = dataclasses.fields(cls)  # type: ignore[arg-type]
    assert all(f.default_factory is dataclasses.MISSING and f.init and f.kw_only is not True for f in params), cls
    assert not hasattr(cls, "__post_init__") and "__slots__" in cls.__dict__, cls
    names = [f.name for f in params]
    scope: dict[str, Any] = {f"_set_{n}": cls.__dict__[n].__set__ for n in names}
    scope.update({f"_default_{f.name}": f.default for f in params if f.default is not dataclasses.MISSING})
    signature = ", ".join(n if f"_default_{n}" not in scope else f"{n}=_default_{n}" for n in names)
    body = "".join(f"    _set_{n}(self, {n})\n" for n in names) or "    pass\n"
    exec(f"def __init__(self, {signature}):\n{body}", scope)
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__, init.__annotations__ = cls.__init__.__doc__, cls.__init__.__annotations__
    setattr(cls, "__init__", init)  # noqa: B010 (mypy: a method is not assigned to)
    return cls
