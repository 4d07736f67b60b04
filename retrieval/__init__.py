"""clipcite retrieval layer."""
