"""Agents: the contract (base), the on- and off-policy loops, and one file per agent."""
