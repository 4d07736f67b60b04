"""clipcite assistant layer."""
