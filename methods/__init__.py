"""The seed papers' methods (PEMN, PX) as plugins: every module here registers itself on import."""
