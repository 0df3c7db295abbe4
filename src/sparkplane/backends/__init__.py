"""Adapters, one per engine kind, behind the `Backend` protocol of `base.py`."""
