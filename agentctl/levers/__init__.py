"""Levers: one module per AWS surface. Each step kind registers itself in ``registry``."""
