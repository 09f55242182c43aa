"""Helpers shared by the test kinds (see tests/README.md); never collected as tests."""
