"""clipcite ingestion layer."""
