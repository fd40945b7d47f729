"""The fixtures of test_cli.py (tiny shipped weights, a folder of tiny images), shared by every CLI test file."""
from test_cli import images, shipped  # noqa: F401
