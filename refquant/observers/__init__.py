"""Observers: reduce batches to statistics, then decide QParams with a pure function."""

from .base import PROFILES, ObserverBase, Profile

__all__ = ["ObserverBase", "Profile", "PROFILES"]
