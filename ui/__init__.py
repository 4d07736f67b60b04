"""clipcite ui layer."""
