"""Real implementations of the domain's ports."""
