"""The recipes package re-exports each recipe's verbs (``plan_<recipe>``, ``build_<recipe>``), as lhotse does."""

from __future__ import annotations

import importlib
import pkgutil

import cmav_data.recipes as recipes


def test_every_recipe_verb_is_exported_from_the_package():
    verbs = set()
    for module_info in pkgutil.iter_modules(recipes.__path__):
        module = importlib.import_module(f"cmav_data.recipes.{module_info.name}")
        verbs |= {f"{verb}_{module_info.name}" for verb in ("plan", "build")
                  if hasattr(module, f"{verb}_{module_info.name}")}
    assert {"plan_suburmp", "build_suburmp", "plan_inis", "build_inis"} <= verbs
    assert verbs <= set(recipes.__all__)
    assert all(hasattr(recipes, name) for name in recipes.__all__)
