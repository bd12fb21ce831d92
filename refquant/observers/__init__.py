"""Observers: reduce batches to statistics, then decide QParams with a pure function.

Each observer takes PaddleSlim's constructor arguments plus ``profile=`` (``"canonical"``,
the default, or ``"paddleslim"``); see :mod:`refquant.observers.base` for the life cycle.
"""

from .base import PROFILES, ObserverBase, Profile
from .hist import HistObserver
from .kl import KLObserver

#: observers that calibrate activations (per-tensor), by class name
ACTIVATION_OBSERVERS: tuple[str, ...] = ("HistObserver", "KLObserver")
#: every observer class, by name (used by the CLI and the conformance suite)
OBSERVERS: dict[str, type[ObserverBase]] = {
    "HistObserver": HistObserver,
    "KLObserver": KLObserver,
}

__all__ = [
    "ObserverBase", "Profile", "PROFILES", "ACTIVATION_OBSERVERS", "OBSERVERS",
    "HistObserver", "KLObserver",
]
