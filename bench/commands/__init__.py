"""The commands of ``python -m bench``: each module gives ``add_arguments`` and ``command``."""
