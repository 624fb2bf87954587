"""agentctl: incident response for AI agents in production.

The package is a library first (``agentctl.spec``, ``agentctl.engine``, ``agentctl.levers``,
``agentctl.incidents``) with a thin Typer CLI in ``agentctl.cli``.
"""

__version__ = "0.1.0"
