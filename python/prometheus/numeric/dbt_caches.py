"""dbt's start-up work that is the same in every process, kept on disk between processes.

A CLI process imports dbt and, in its first invocations, compiles every Jinja template it
renders (macros, materializations, model and test SQL: about 150 templates and 0.45-0.6 s
for a single-date run) and builds the JSON schemas it checks the project and profile
against (9 schemas, 0.5 s). dbt keeps both in memory only, so every process paid again.
Both are pure functions of their input and of the installed code, so they are cached under
the project's target/ folder, next to dbt's own partial_parse.msgpack: Python code objects
(marshal, as Jinja's own bytecode cache stores them) and JSON. Every key hashes the input
with the versions of Python and of the packages that produce the output; an entry that is
missing, unreadable or from other versions is rebuilt, and a cache that cannot be written
only costs the time it would have saved.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import marshal
import os
import sys
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from types import CodeType
from typing import Any

import dbt.clients.jinja as dbt_core_jinja
import dbt_common.clients.jinja as dbt_jinja
import dbt_common.dataclass_schema as dbt_schema

log = logging.getLogger("prometheus.numeric.dbt_caches")

CACHE_FORMAT = "1"  # bump when what is stored changes shape
# The packages whose code decides a compiled template or a schema.
PACKAGES = ("dbt-core", "dbt-common", "dbt-adapters", "dbt-postgres", "jinja2", "mashumaro")


def code_fingerprint() -> str:
    """Python's version (marshal and bytecode formats) and the packages' versions."""
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} missing")
    return "\n".join([CACHE_FORMAT, sys.version, *versions])


class DiskCache:
    """Files named by a hash of (fingerprint, kind, input), one folder per kind."""

    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.folder = folder
        self.fingerprint = fingerprint

    def _path(self, kind: str, *parts: str) -> Path:
        digest = hashlib.sha256("\0".join((self.fingerprint, kind, *parts)).encode())
        return self.folder / kind / digest.hexdigest()

    def load(self, kind: str, *parts: str) -> bytes | None:
        try:
            return self._path(kind, *parts).read_bytes()
        except OSError:
            return None

    def store(self, kind: str, data: bytes, *parts: str) -> None:
        """Atomically (a temporary file renamed): concurrent runs share the cache."""
        path = self._path(kind, *parts)
        temporary = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, path)
        except OSError as exc:
            log.debug("dbt cache not written (%s): %s", path, exc)
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)


class _State:
    def __init__(self) -> None:
        self.cache: DiskCache | None = None
        self.codes: dict[tuple[str, str], CodeType] = {}  # this process's compiled templates


_state = _State()
_dbt_get_template = dbt_jinja.get_template
_dbt_json_schema = dbt_schema.dbtClassMixin.json_schema.__func__.__wrapped__  # type: ignore[attr-defined]


def _compiled(environment_kind: str, source: str, compile_source: Callable[[], CodeType]
              ) -> CodeType:
    key = (environment_kind, source)
    code = _state.codes.get(key)
    if code is not None:
        return code
    cache = _state.cache
    data = cache.load("jinja", environment_kind, source) if cache else None
    if data is not None:
        try:
            code = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            code = None
    if not isinstance(code, CodeType):
        code = compile_source()
        if cache:
            cache.store("jinja", marshal.dumps(code), environment_kind, source)
    _state.codes[key] = code
    return code


def get_template(string: str, ctx: dict[str, Any], node: Any = None,
                 capture_macros: bool = False, native: bool = False) -> Any:
    """dbt_common's get_template (Environment.from_string) with the compile step cached.
    Parsing with capture_macros makes an environment per node: those are left to dbt."""
    if capture_macros or dbt_jinja.MACRO_DEBUGGING:
        return _dbt_get_template(string, ctx, node, capture_macros, native)
    with dbt_jinja.catch_jinja(node):
        environment = dbt_jinja.get_environment(node, capture_macros, native=native)
        source = str(string)
        code = _compiled(type(environment).__qualname__, source,
                         lambda: environment.compile(source))  # type: ignore[return-value]
        return environment.template_class.from_code(
            environment, code, environment.make_globals(ctx), None)


@functools.lru_cache
def _json_schema(cls: type) -> dict[str, Any]:
    """dbtClassMixin.json_schema (mashumaro's build_json_schema(cls).to_dict()), cached."""
    cache = _state.cache
    name = f"{cls.__module__}.{cls.__qualname__}"
    data = cache.load("json_schema", name) if cache else None
    if data is not None:
        try:
            schema = json.loads(data)
            if isinstance(schema, dict):
                return schema
        except ValueError:
            pass
    schema = _dbt_json_schema(cls)
    if cache:
        try:
            cache.store("json_schema", json.dumps(schema).encode(), name)
        except (TypeError, ValueError) as exc:  # not JSON after all: only not cached
            log.debug("JSON schema of %s not cached: %s", name, exc)
    return schema


def install(folder: Path) -> None:
    """Route dbt's template compiles and schema builds through the cache in folder
    (PROMETHEUS_DBT_CACHE=off leaves dbt as it is)."""
    if os.environ.get("PROMETHEUS_DBT_CACHE", "").lower() == "off":
        return
    if _state.cache is None or _state.cache.folder != folder:
        _state.cache = DiskCache(folder, code_fingerprint())
    # dbt_common's macro templates and dbt's get_rendered (node SQL, configs) compile here.
    dbt_jinja.get_template = get_template
    dbt_core_jinja.get_template = get_template  # type: ignore[attr-defined]
    dbt_schema.dbtClassMixin.json_schema = classmethod(_json_schema)  # type: ignore[assignment]
