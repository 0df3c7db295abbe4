"""sparkplane: a self-hosted control plane for private AI on a small fleet of GPU machines."""

__version__ = "0.1.0"
