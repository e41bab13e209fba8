"""Stage kinds for recipes: each maps to a function `fn(params, stage_dir, inputs) -> outputs`.

`params` is the stage's `params:` mapping from the recipe, `stage_dir` the directory the stage
writes into, `inputs` the resolved input paths by name. A stage function returns a small
JSON-able dict of outputs (paths relative to `stage_dir`, headline metrics) recorded in the
manifest. Stage functions are thin adapters over library calls; they must be resumable (use
`RecordStore`) because a crashed recipe re-runs the unfinished stage.
"""

from __future__ import annotations

from selfimprove.registry import Registry

STAGE_KINDS = Registry("stage kind", {})
