"""vla_bench: a LIBERO evaluation harness for vision-language-action policies."""

__version__ = "0.1.0"
