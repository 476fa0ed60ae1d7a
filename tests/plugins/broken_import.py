"""A plugin that cannot be imported."""

raise ImportError("weaver_broken needs libfoo, which is not installed")
