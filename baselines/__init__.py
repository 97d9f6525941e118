"""Comparison methods as plugins: every module here registers itself on import."""
