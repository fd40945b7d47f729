"""The package version, at ground level so the CLI can print it without importing the public API."""
__version__ = "0.1.0"
