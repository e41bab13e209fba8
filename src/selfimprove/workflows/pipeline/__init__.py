"""Recipes: chains of stages (eval -> distill -> convert -> train -> eval ...) run by `selfimprove run`.

`recipe.py` defines the YAML schema, `manifest.py` the per-stage manifest that makes re-runs
skip finished stages, `run_recipe.py` executes a recipe, `stages.py` maps stage kinds to library
functions.
"""
