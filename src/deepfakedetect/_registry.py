"""Name registries for plugins: samplers, aggregators and face detectors.

A registry maps a name to a factory: a class (usually a frozen dataclass whose fields
are the plugin's parameters) or a plain function. Third-party packages add entries
through entry points; these are looked up only when a name is not already known, so
importing deepfakedetect never imports a plugin package.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any, Generic, TypeVar

from deepfakedetect._errors import ConfigError, UnknownPluginError
from deepfakedetect._untrusted import MAX_SPEC_CHARS, MAX_SPEC_PARAMS, shorten

logger = logging.getLogger(__name__)

T = TypeVar("T", bound=Callable[..., Any])
F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["Registry", "parse_spec", "parse_value"]


_INT_RE = re.compile(r"[+-]?\d{1,30}")
_FLOAT_RE = re.compile(r"[+-]?(?:\d{1,30}\.\d{0,30}|\.\d{1,30}|\d{1,30})(?:[eE][+-]?\d{1,4})?")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,99}")
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_WORDS: dict[str, Any] = {
    "True": True, "true": True, "False": False, "false": False, "None": None, "none": None, "null": None,
}  # fmt: skip


def parse_value(raw: str) -> Any:
    """One spec value: an integer, a float, true/false/none, a quoted string, or else plain text.

    A flat parse of bounded text, never a Python parser: nested literals and expressions
    stay text (which the plugin then refuses with its own message), so no spec can make
    the parse recurse or allocate without bound.

    Example:
        >>> [parse_value(v) for v in ("5", "-0.5", "1e3", "True", "none", "'a b'", "fast", "[1]")]
        [5, -0.5, 1000.0, True, None, 'a b', 'fast', '[1]']
    """
    if raw in _WORDS:
        return _WORDS[raw]
    if _INT_RE.fullmatch(raw):
        return int(raw)
    if _FLOAT_RE.fullmatch(raw):
        return float(raw)
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"" and raw[0] not in raw[1:-1]:
        return raw[1:-1]
    return raw


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name:key=value,key=value"`` into a name and keyword arguments.

    Values are numbers, ``True``/``False``/``None`` (or lower case), quoted text, or
    else plain text (see :func:`parse_value`). A spec is at most ``MAX_SPEC_CHARS``
    characters with at most ``MAX_SPEC_PARAMS`` parameters.

    Raises:
        ConfigError: a spec that is too long, has no name, or a malformed or repeated parameter.

    Example:
        >>> parse_spec("top_k_mean:k=5")
        ('top_k_mean', {'k': 5})
        >>> parse_spec("uniform")
        ('uniform', {})
    """
    if not isinstance(spec, str):
        raise ConfigError(f"a plugin spec must be text, got {type(spec).__name__}")
    if len(spec) > MAX_SPEC_CHARS:
        raise ConfigError(
            f"a plugin spec of {len(spec)} characters is too long (at most {MAX_SPEC_CHARS}): {shorten(spec, 60)}"
        )
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(
            f"plugin spec {shorten(spec)} does not start with a name (letters, digits, '_', '.', '-'); "
            "expected 'name' or 'name:key=value,key=value'"
        )
    params: dict[str, Any] = {}
    if rest.strip():
        items = rest.split(",")
        if len(items) > MAX_SPEC_PARAMS:
            raise ConfigError(f"plugin spec {shorten(spec)} sets {len(items)} parameters; at most {MAX_SPEC_PARAMS}")
        for item in items:
            key, eq, raw = item.partition("=")
            key = key.strip()
            if not eq or not _KEY_RE.fullmatch(key):
                raise ConfigError(
                    f"cannot parse {shorten(item, 60)} in plugin spec {shorten(spec)}: "
                    "expected 'name:key=value,key=value'"
                )
            if key in params:
                raise ConfigError(f"plugin spec {shorten(spec)} sets {key!r} twice")
            params[key] = parse_value(raw.strip())
    return name, params


class Registry(Generic[T]):
    """A named collection of plugins of one kind, extended through an entry-point group.

    Args:
        kind: What the registry holds, used in messages (``"aggregator"``).
        group: The entry-point group third-party packages register under.

    Example:
        >>> reg = Registry("greeting", group="example.greetings")
        >>> @reg.register("hello")
        ... def hello(name):
        ...     return f"hello {name}"
        >>> reg.get("hello")("you")
        'hello you'
        >>> "hello" in reg.names()
        True
    """

    def __init__(self, kind: str, *, group: str) -> None:
        self.kind = kind
        self.group = group
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(
        self, name: str | None = None, *, override: bool = False
    ) -> Callable[[F], F]:
        """Decorator that registers a class or function under ``name`` (default: its ``__name__``).

        Raises:
            ConfigError: if the name is taken and ``override`` is false.
        """

        def decorator(obj: F) -> F:
            self.add(name or obj.__name__, obj, override=override)
            return obj

        return decorator

    def add(self, name: str, obj: Callable[..., Any], *, override: bool = False) -> None:
        """Register ``obj`` under ``name``; see :meth:`register`."""
        if not callable(obj):
            raise ConfigError(f"cannot register {obj!r} as {self.kind} {name!r}: it is not callable")
        if name in self._entries and not override and self._entries[name] is not obj:
            raise ConfigError(
                f"a {self.kind} named {name!r} is already registered ({self._entries[name]!r}); "
                "pass override=True to replace it"
            )
        self._entries[name] = obj

    def names(self) -> list[str]:
        """Sorted names known now, including those advertised through entry points."""
        names = set(self._entries)
        names.update(ep.name for ep in self._entry_points())
        return sorted(names)

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered under ``name``, loading an entry point on a miss.

        Raises:
            UnknownPluginError: listing the known names when nothing has this name.
        """
        if name not in self._entries:
            self._load_entry_point(name)
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownPluginError(
                f"unknown {self.kind} {shorten(name)}; known {self.kind}s: {', '.join(self.names())}"
            ) from None

    def create(self, spec: Any, **overrides: Any) -> Any:
        """Turn a spec into a ready plugin.

        ``spec`` may be a name (``"top_k_mean"``), a name with parameters
        (``"top_k_mean:k=5"``), a mapping (``{"name": "top_k_mean", "k": 5}``) or an
        already-made callable (returned unchanged). A registered class is
        instantiated with the parameters; a registered function with parameters is
        bound with :func:`functools.partial`.
        """
        if isinstance(spec, str):
            name, params = parse_spec(spec)
        elif isinstance(spec, Mapping):
            params = dict(spec)
            name = params.pop("name", None)
            if not isinstance(name, str):
                raise ConfigError(f"a {self.kind} given as a mapping needs a 'name' key: {shorten(spec)}")
        elif callable(spec):
            return spec
        else:
            raise ConfigError(
                f"a {self.kind} must be a name, a mapping with 'name', or a callable; got {shorten(spec)}"
            )
        params.update(overrides)
        factory = self.get(name)
        if inspect.isclass(factory):
            try:
                return factory(**params)
            except TypeError as e:
                raise ConfigError(f"bad parameters for {self.kind} {name!r}: {e}") from e
        if params:
            try:
                inspect.signature(factory).bind_partial(None, **params)
            except TypeError as e:
                raise ConfigError(f"bad parameters for {self.kind} {name!r}: {e}") from e
            return functools.partial(factory, **params)
        return factory

    def _entry_points(self) -> list[metadata.EntryPoint]:
        try:
            return list(metadata.entry_points(group=self.group))
        except Exception as e:  # a broken installed distribution must not break us
            logger.warning("could not read entry points of group %s: %s", self.group, e)
            return []

    def _load_entry_point(self, name: str) -> None:
        for ep in self._entry_points():
            if ep.name != name:
                continue
            try:
                obj = ep.load()
            except Exception as e:
                raise UnknownPluginError(
                    f"{self.kind} {name!r} is advertised by entry point {ep.value!r} "
                    f"(group {self.group}) but failed to load: {e}"
                ) from e
            # The plugin module may have registered itself on import; keep that one.
            if name not in self._entries:
                self.add(name, obj)
            return
