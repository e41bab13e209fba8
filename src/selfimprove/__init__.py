"""selfimprove: make small open LLMs improve themselves at agentic tasks with verifiable outcomes.

The package is layered (see docs/architecture.md): core, data, tasks, tools, models, agent,
rewards, convert, train, eval, workflows, and a thin CLI on top. Importing the package is cheap: heavy libraries (torch,
transformers, trl) are imported by the modules that need them, when they need them.
"""

__version__ = "0.1.0"
