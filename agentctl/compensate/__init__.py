"""Compensations: plan them from action records, execute them exactly once, resumably."""
