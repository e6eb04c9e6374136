"""pytest configuration for bench/: helpers live in benchutils.py."""
from benchutils import QUICK  # noqa: F401  (fails early if bench/ is not on sys.path)
