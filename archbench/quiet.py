"""Which warnings a user of the command line sees: dependencies' deprecation warnings are hidden.

Such a warning (torch.jit.script's, raised as timm and torchvision import) tells a user nothing they can act on.
:func:`archbench.cli.app.main` hides them while it runs, so the test suite (pytest's own filters) still shows them;
a process it spawns (``archbench run --jobs``) starts through :func:`call_spawned`, which hides them before the
child's code, and with it torch, is imported.
"""

from __future__ import annotations

import importlib
import pickle
import warnings
from typing import Any

#: Modules whose deprecation warnings are hidden: every module but archbench's own.
DEPENDENCY_MODULES = r"(?!archbench(\.|$))"
_CATEGORIES = (FutureWarning, DeprecationWarning)


def hide_dependency_deprecations() -> None:
    """Ignore ``FutureWarning`` and ``DeprecationWarning`` raised from the modules of :data:`DEPENDENCY_MODULES`."""
    for category in _CATEGORIES:
        warnings.filterwarnings("ignore", category=category, module=DEPENDENCY_MODULES)


def hiding() -> bool:
    """Whether this process hides dependencies' deprecation warnings now (:func:`hide_dependency_deprecations`)."""
    return any(
        action == "ignore" and module is not None and module.pattern == DEPENDENCY_MODULES
        for action, _message, _category, module, _line in warnings.filters
    )


def call_spawned(hide: bool, target: str, payload: bytes, *live: Any) -> None:
    """A spawned process's entry: hide the warnings if ``hide``, then import ``target`` (``module:function``) and call
    it with the unpickled ``payload`` (a tuple of arguments) followed by ``live`` (what only spawning can hand over,
    such as a queue). The target and its arguments are imported only here, after the filters are in place."""
    if hide:
        hide_dependency_deprecations()
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    function(*pickle.loads(payload), *live)
