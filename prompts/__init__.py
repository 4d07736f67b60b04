"""The prompt files (one per purpose, `NAME.md`), package data read by assistant/prompts.py."""
