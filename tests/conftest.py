"""Suite-wide pytest configuration."""

pytest_plugins = ["tests.engines.fixtures"]
