"""dbt's compiled templates and JSON schemas, cached on disk: same results, rebuilt when bad."""

from __future__ import annotations

import marshal
from pathlib import Path
from typing import Any

import dbt_common.clients.jinja as dbt_jinja
import pytest
from dbt.contracts.project import Project

from prometheus.numeric import dbt_caches

TEMPLATES = [
    "select {{ value }} as answer",
    "{% set greeting %}hello {{ who | upper }}{% endset %}{{ greeting | trim }}",
    "{% set items = [] %}{% for i in range(3) %}{% do items.append(i * step) %}{% endfor %}"
    "{{ items | join(',') }}{% if flag %} flagged{% endif %}",
]
CONTEXT: dict[str, Any] = {"value": 42, "who": "dbt", "step": 5, "flag": True}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dbt_caches.DiskCache:
    """A fresh process's view: an empty disk cache and nothing compiled in memory."""
    state = dbt_caches._State()
    state.cache = dbt_caches.DiskCache(tmp_path, dbt_caches.code_fingerprint())
    monkeypatch.setattr(dbt_caches, "_state", state)
    dbt_caches._json_schema.cache_clear()
    yield state.cache
    dbt_caches._json_schema.cache_clear()


def forget_compiled_in_memory() -> None:
    dbt_caches._state.codes.clear()


def render(source: str, native: bool = False) -> Any:
    return dbt_caches.get_template(source, dict(CONTEXT), native=native).render(CONTEXT)


@pytest.mark.parametrize("source", TEMPLATES)
def test_cached_templates_render_as_dbt_renders_them(cache: dbt_caches.DiskCache,
                                                     source: str) -> None:
    expected = dbt_caches._dbt_get_template(source, dict(CONTEXT)).render(CONTEXT)
    assert render(source) == expected
    forget_compiled_in_memory()
    assert render(source) == expected  # from the disk
    native = dbt_caches._dbt_get_template(source, dict(CONTEXT), native=True).render(CONTEXT)
    assert render(source, native=True) == native


def test_a_cached_macro_is_called_as_dbt_calls_macros(cache: dbt_caches.DiskCache) -> None:
    # dbt's parser renames a macro to dbt_macro__<name>; MacroGenerator.get_macro takes it
    # from the template's module.
    source = ("{% macro greet(name, punctuation='!') %}"
              "hello {{ name }}{{ punctuation }}{% endmacro %}")
    for _ in range(2):
        module = dbt_caches.get_template(source, {}).make_module(vars={}, shared=False)
        assert module.__dict__["dbt_macro__greet"]("dbt") == "hello dbt!"
        forget_compiled_in_memory()


def test_a_second_process_loads_the_compiled_code_instead_of_compiling(
        cache: dbt_caches.DiskCache, monkeypatch: pytest.MonkeyPatch) -> None:
    source = TEMPLATES[1]
    first = render(source)
    assert len(list((cache.folder / "jinja").iterdir())) == 1
    forget_compiled_in_memory()

    def no_compiling(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(dbt_jinja.MacroFuzzEnvironment, "compile", no_compiling)
    assert render(source) == first


def test_an_unreadable_entry_is_compiled_again_and_replaced(
        cache: dbt_caches.DiskCache) -> None:
    source = TEMPLATES[2]
    expected = render(source)
    (entry,) = (cache.folder / "jinja").iterdir()
    entry.write_bytes(b"not marshal data")
    forget_compiled_in_memory()
    assert render(source) == expected
    assert marshal.loads(entry.read_bytes()).co_filename == "<template>"


def test_other_versions_do_not_share_entries(tmp_path: Path) -> None:
    ours = dbt_caches.DiskCache(tmp_path, "fingerprint A")
    ours.store("jinja", b"code", "MacroFuzzEnvironment", "select 1")
    assert ours.load("jinja", "MacroFuzzEnvironment", "select 1") == b"code"
    assert ours.load("jinja", "MacroFuzzEnvironment", "select 2") is None
    theirs = dbt_caches.DiskCache(tmp_path, "fingerprint B")
    assert theirs.load("jinja", "MacroFuzzEnvironment", "select 1") is None


def test_json_schemas_come_back_equal_from_the_disk(cache: dbt_caches.DiskCache,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    built = dbt_caches._dbt_json_schema(Project)
    assert dbt_caches._json_schema(Project) == built
    assert len(list((cache.folder / "json_schema").iterdir())) == 1
    dbt_caches._json_schema.cache_clear()

    def no_building(cls: type) -> None:
        raise AssertionError("built again")

    monkeypatch.setattr(dbt_caches, "_dbt_json_schema", no_building)
    assert dbt_caches._json_schema(Project) == built


def test_an_unwritable_cache_only_costs_time(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    state = dbt_caches._State()
    state.cache = dbt_caches.DiskCache(blocked, dbt_caches.code_fingerprint())
    monkeypatch.setattr(dbt_caches, "_state", state)
    assert render(TEMPLATES[0]) == "select 42 as answer"


def test_install_routes_dbt_through_the_cache_unless_turned_off(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dbt.clients.jinja as dbt_core_jinja
    from dbt_common.dataclass_schema import dbtClassMixin

    for module in (dbt_jinja, dbt_core_jinja):
        monkeypatch.setattr(module, "get_template", dbt_caches._dbt_get_template)
    monkeypatch.setattr(dbt_caches, "_state", dbt_caches._State())
    monkeypatch.setenv("PROMETHEUS_DBT_CACHE", "off")
    dbt_caches.install(tmp_path)
    assert dbt_jinja.get_template is dbt_caches._dbt_get_template
    monkeypatch.delenv("PROMETHEUS_DBT_CACHE")
    monkeypatch.setattr(dbtClassMixin, "json_schema", dbtClassMixin.json_schema)
    dbt_caches.install(tmp_path)
    assert dbt_jinja.get_template is dbt_caches.get_template
    assert dbt_core_jinja.get_template is dbt_caches.get_template
    assert dbt_caches._state.cache is not None and dbt_caches._state.cache.folder == tmp_path


def test_native_and_text_templates_of_one_source_stay_apart(cache: dbt_caches.DiskCache) -> None:
    # dbt renders configs natively ('42' -> 42) and SQL as text; one source, two codes.
    assert render("{{ value }}") == "42"
    assert render("{{ value }}", native=True) == 42
    forget_compiled_in_memory()
    assert render("{{ value }}", native=True) == 42
    assert render("{{ value }}") == "42"
    assert len(list((cache.folder / "jinja").iterdir())) == 2
