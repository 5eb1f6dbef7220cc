"""robosuite manipulation tasks for rlte-plugins."""
