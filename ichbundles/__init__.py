"""ICH Bundles: intracranial hemorrhage detection on head CT, packaged as MONAI bundles."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
