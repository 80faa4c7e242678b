"""A faithful simulated Codis cluster (dashboard + fake Redis nodes) with fault injection, on loopback."""
from __future__ import annotations

from .cluster import Cluster

__all__ = ["Cluster"]
