"""dbt_runner replaces dbt_common's slow default source of behavior flags; the name it
gives must stay the one dbt_common's own inspect.stack() walk gives."""

from __future__ import annotations

import inspect

from dbt_common import behavior_flags

from prometheus.numeric import dbt_runner

FLAG = behavior_flags.BehaviorFlag(name="some_flag", default=False, description="a flag")


def _stack_walk_source() -> str:
    """dbt_common's original: the first module on the stack that is not behavior_flags."""
    for frame in inspect.stack():
        if (module := inspect.getmodule(frame[0])) and \
                module.__name__ != behavior_flags.__name__:
            return module.__name__
    return "Unknown"


def test_a_flag_without_source_names_the_module_that_created_it() -> None:
    flag = behavior_flags.BehaviorFlagRendered(FLAG, {})
    assert flag._behavior_change_event.flag_source == __name__


def test_the_replacement_is_installed_and_names_what_the_stack_walk_names() -> None:
    replaced = behavior_flags.BehaviorFlagRendered._default_source
    assert replaced is dbt_runner._calling_module
    assert replaced() == _stack_walk_source() == __name__
