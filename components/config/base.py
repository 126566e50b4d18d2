"""The strict base of every configuration section, and pydantic's errors as ``ConfigError``.

Sections are frozen pydantic models that refuse unknown keys, take no ``true`` for a number, no
``2.5`` for an integer and no ``inf`` for a float, and report the first problem as
``config key 'train.lr': must be positive (got -0.1)``: the dotted key a user types after ``--set``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from components.errors import ConfigError

# Types a section's fields are declared with: strict, so that YAML's `true`, `2.5` or `"8"` never
# pass for something else; floats are finite.
Integer = StrictInt
PositiveInt = Annotated[StrictInt, Field(gt=0)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # an int is a number too
PositiveNumber = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)]
NonNegativeNumber = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0)]
Probability = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=1)]
Flag = StrictBool
Text = StrictStr
NonEmptyText = Annotated[StrictStr, Field(min_length=1)]


def bounded(kind: Any, reason: str, **limits: float) -> Any:
    """``kind`` held within ``limits`` (pydantic's ``ge``, ``gt``, ``le``, ``lt``); a value outside
    them is refused with ``reason``: why the bound is where it is."""
    return Annotated[kind, Field(description=reason, **limits)]


class Section(BaseModel):
    """A frozen, strict configuration section; ``SECTION`` is its dotted prefix in error messages."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    SECTION: ClassVar[str] = ""

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise config_error(err, type(self), self.SECTION) from None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Self:
        if not isinstance(values, Mapping):
            raise ConfigError(cls.SECTION or "config", f"must be a mapping (got {type(values).__name__})")
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def with_overrides(self, **values: Any) -> Self:
        """A validated copy with some fields replaced."""
        return type(self).from_dict({**self.as_dict(), **values})


# -- pydantic's errors in our words ---------------------------------------------------------------------
def config_error(err: ValidationError, model: type[BaseModel], prefix: str = "") -> ConfigError:
    """The first of pydantic's errors as a ``ConfigError`` naming the dotted key."""
    detail = err.errors(include_url=False)[0]
    location = tuple(detail["loc"])
    return ConfigError(dotted_key(prefix, location), describe(detail, model, location))


def dotted_key(prefix: str, location: Iterable[Any]) -> str:
    """``("train", "betas", 0)`` under prefix "" to ``train.betas[0]``."""
    key = prefix
    for part in location:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key = f"{key}.{part}" if key else str(part)
    return key or "config"


def describe(detail: dict[str, Any], model: type[BaseModel], location: tuple) -> str:
    """One error of pydantic's in the project's phrasing (``must be positive (got -1)``), with the
    field's reason when a bound of ``bounded`` refused it."""
    text = _phrase(detail, model, location)
    if detail["type"] in BOUND_ERRORS:
        reason = _field_reason(model, location)
        text = f"{text}: {reason}" if reason else text
    return text


BOUND_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _field_reason(model: type[BaseModel], location: tuple) -> str | None:
    """The ``bounded`` reason of the field at ``location``, if it has one."""
    current: Any = model
    for part in location:
        fields = getattr(current, "model_fields", None)
        if not isinstance(part, str) or fields is None or part not in fields:
            return None
        info = fields[part]
        if part == location[-1]:
            return info.description
        current = info.annotation
    return None


def _phrase(detail: dict[str, Any], model: type[BaseModel], location: tuple) -> str:
    kind, context = detail["type"], detail.get("ctx") or {}
    got = f"(got {detail['input']!r})" if "input" in detail else ""
    if kind == "extra_forbidden":
        known = ", ".join(sorted(_fields_at(model, location[:-1])))
        return f"unknown key; known keys here: {known}"
    if kind == "greater_than":
        return f"must be positive {got}" if context.get("gt") == 0 else f"must be greater than {context['gt']} {got}"
    if kind == "greater_than_equal":
        return f"must not be negative {got}" if context.get("ge") == 0 else f"must be at least {context['ge']} {got}"
    if kind in ("less_than", "less_than_equal"):
        bound = context.get("lt", context.get("le"))
        return f"must be {'below' if kind == 'less_than' else 'at most'} {bound} {got}"
    if kind == "literal_error":
        return f"must be one of {context['expected']} {got}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "value_error":
        return str(context.get("error", detail["msg"]))
    expected = {
        "int_type": "expected int",
        "float_type": "expected a number",
        "finite_number": "must be a finite number",
        "bool_type": "expected true or false",
        "string_type": "expected a string",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "tuple_type": "expected a list",
        "list_type": "expected a list",
    }.get(kind)
    return f"{expected} {got}" if expected else f"{detail['msg']} {got}".strip()


def _fields_at(model: type[BaseModel], location: tuple) -> set[str]:
    """The field names of the (nested) section at ``location``."""
    for part in location:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return set()
        model = annotation
    return set(model.model_fields)
