"""Chapter parameters: named profiles of defaults, and validation before any work starts.

A chapter declares its knobs once, as a :class:`ParamSpec`. The notebook's ``parameters`` cell
holds the same names with ``None`` for "take the profile's value"; papermill, the ``ai4m`` runner
or a reader editing the cell may override any of them. :meth:`ParamSpec.resolve` fills in the
profile, checks every value and returns a plain dict, so a typo fails loudly before training.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any, Callable, Iterable, Mapping

PROFILES = ("smoke", "full")

# Names every chapter accepts, whatever its topic.
COMMON_NAMES = ("profile", "seed", "device", "results_path")


_SAME_AS_SMOKE = object()


class ParameterError(ValueError):
    """A parameter is unknown, of the wrong type or out of range."""


@dataclasses.dataclass(frozen=True)
class Param:
    """One knob: its type, its default per profile, and what values make sense.

    A list knob has ``type=list`` and the type of its items in ``item``; ``min``, ``max`` and
    ``choices`` then apply to every item, and it is given on the command line as ``a,b,c``."""

    type: type
    smoke: Any
    full: Any = _SAME_AS_SMOKE
    help: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    check: Callable[[Any], str | None] | None = None  # returns an error message or None
    item: type | None = None       # the items' type, for type=list
    min_items: int = 1

    def default(self, profile: str) -> Any:
        if profile == "full" and self.full is not _SAME_AS_SMOKE:
            return self.full
        return self.smoke

    def describe(self) -> str:
        """Short human-readable constraint, for `ai4m list` and error messages."""
        parts = [f"list of {self.item.__name__}" if self.item else self.type.__name__]
        if self.item and self.min_items > 1:
            parts.append(f"at least {self.min_items} items")
        limits = []
        if self.choices is not None:
            limits.append("one of " + ", ".join(map(repr, self.choices)))
        if self.min is not None:
            limits.append(f">= {self.min}")
        if self.max is not None:
            limits.append(f"<= {self.max}")
        if self.item and limits:
            limits[0] = "each " + limits[0]
        return ", ".join(parts + limits)


def _common_params() -> dict[str, Param]:
    return {
        "profile": Param(str, "smoke", full="full", choices=PROFILES, help="named set of defaults"),
        "seed": Param(int, 0, min=0, max=2**32 - 1, help="seed of every random choice"),
        "device": Param(str, "auto", check=_check_device, help="'auto', 'cpu', 'cuda' or 'cuda:N'"),
        "results_path": Param(str, "", help="where the results record goes ('' for none)"),
    }


def _check_device(value: str) -> str | None:
    if value in ("auto", "cpu", "cuda", "mps") or (value.startswith("cuda:") and value[5:].isdigit()):
        return None
    return "expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


class ParamSpec:
    """The knobs of one chapter, the common ones (profile, seed, device, results_path) included."""

    def __init__(self, params: Mapping[str, Param],
                 joint_checks: Iterable[Callable[[dict], str | None]] = ()):
        clash = set(params) & set(COMMON_NAMES)
        if clash:
            raise ValueError(f"chapter parameters may not redefine {sorted(clash)}")
        self.params: dict[str, Param] = {**_common_params(), **params}
        # Checks of several values together (each returns an error message or None).
        self.joint_checks = tuple(joint_checks)

    def names(self) -> list[str]:
        return list(self.params)

    def defaults(self, profile: str = "smoke") -> dict[str, Any]:
        self._check_profile(profile)
        return {name: p.default(profile) for name, p in self.params.items()}

    # -- validation -------------------------------------------------------------------------
    def check_names(self, names: Iterable[str]) -> None:
        unknown = [n for n in names if n not in self.params]
        if unknown:
            raise ParameterError("; ".join(self._unknown_message(n) for n in unknown))

    def _unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.params, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown parameter {name!r}{hint}; known: {', '.join(self.params)}"

    def _check_profile(self, profile: Any) -> None:
        if profile not in PROFILES:
            raise ParameterError(f"parameter 'profile' must be one of {PROFILES}, got {profile!r}")

    def coerce(self, name: str, value: Any) -> Any:
        """Convert a value (for example a string from the command line) to the parameter's type."""
        self.check_names([name])
        p = self.params[name]
        if value is None:
            return None
        if isinstance(value, str) and p.type is not str:
            return self._parse_text(name, p, value)
        return value

    @classmethod
    def _parse_text(cls, name: str, p: Param, text: str) -> Any:
        if p.type is list:
            # "0.1,1" and "[0.1, 1]" both give a list (quotes around strings are dropped)
            items = [t.strip().strip("'\"") for t in text.strip().strip("[]").split(",") if t.strip()]
            if p.item is str:
                return items
            item_param = dataclasses.replace(p, type=p.item, item=None)
            return [cls._parse_text(name, item_param, t) for t in items]
        try:
            if p.type is bool:
                lowered = text.strip().lower()
                if lowered in ("true", "1", "yes"):
                    return True
                if lowered in ("false", "0", "no"):
                    return False
                raise ValueError
            if p.type is int:
                return int(text)
            if p.type is float:
                return float(text)
        except ValueError:
            raise ParameterError(
                f"parameter {name!r} expects {p.type.__name__}, got {text!r}") from None
        raise ParameterError(f"parameter {name!r} of type {p.type.__name__} cannot be given as text")

    def check_value(self, name: str, value: Any) -> Any:
        """Return the value, converted where lossless (int -> float), or raise ParameterError."""
        p = self.params[name]
        if p.type is list:
            if not isinstance(value, (list, tuple)):
                raise ParameterError(f"parameter {name!r} expects a list of {p.item.__name__} "
                                     f"(or 'a,b,c' on the command line), got {type(value).__name__} {value!r}")
            if len(value) < p.min_items:
                raise ParameterError(f"parameter {name!r} needs at least {p.min_items} item(s), got {value!r}")
            value = [self._check_scalar(name, p, p.item, v) for v in value]
        else:
            value = self._check_scalar(name, p, p.type, value)
        if p.check is not None:
            problem = p.check(value)
            if problem:
                raise ParameterError(f"parameter {name!r}: {problem}, got {value!r}")
        return value

    @staticmethod
    def _check_scalar(name: str, p: Param, kind: type, value: Any) -> Any:
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ParameterError(
                f"parameter {name!r} expects {kind.__name__}, got {type(value).__name__} {value!r}")
        if isinstance(value, float) and math.isnan(value):
            raise ParameterError(f"parameter {name!r} must be a number, got NaN")
        if p.choices is not None and value not in p.choices:
            raise ParameterError(f"parameter {name!r} must be one of {p.choices}, got {value!r}")
        if p.min is not None and value < p.min:
            raise ParameterError(f"parameter {name!r} must be >= {p.min}, got {value!r}")
        if p.max is not None and value > p.max:
            raise ParameterError(f"parameter {name!r} must be <= {p.max}, got {value!r}")
        return value

    def validate(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Check names and values of user overrides (``None`` means "profile default")."""
        self.check_names(overrides)
        checked = {}
        for name, value in overrides.items():
            checked[name] = None if value is None else self.check_value(name, value)
        return checked

    def resolve(self, **overrides: Any) -> dict[str, Any]:
        """The full set of values: the profile's defaults with the overrides on top."""
        checked = self.validate(overrides)
        profile = checked.get("profile") or "smoke"
        self._check_profile(profile)
        values = self.defaults(profile)
        values.update({k: v for k, v in checked.items() if v is not None})
        problems = [msg for check in self.joint_checks if (msg := check(values))]
        if problems:
            raise ParameterError("; ".join(problems))
        return values

    def resolve_from(self, namespace: Mapping[str, Any]) -> dict[str, Any]:
        """Resolve from a notebook's globals: picks exactly this spec's names."""
        return self.resolve(**{name: namespace[name] for name in self.params if name in namespace})
