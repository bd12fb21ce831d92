"""Observers: reduce batches to statistics, then decide QParams with a pure function.

Each observer takes PaddleSlim's constructor arguments plus ``profile=`` (``"canonical"``,
the default, or ``"paddleslim"``); see :mod:`refquant.observers.base` for the life cycle.
Pure decision functions live beside them: :mod:`refquant.observers.search` (candidate
searches), :func:`refquant.observers.kl.kl_threshold`, :mod:`refquant.observers.hist`.
"""

from .absmax import AbsmaxObserver
from .avg import AVGObserver
from .base import PROFILES, ObserverBase, Profile
from .channel_wise import AbsMaxChannelWiseWeightObserver, MSEChannelWiseWeightObserver
from .emd import EMDObserver
from .groupwise import GroupWiseWeightObserver
from .hist import HistObserver
from .kl import KLObserver
from .mse import MSEObserver

#: observers that calibrate activations (per-tensor), by class name
ACTIVATION_OBSERVERS: tuple[str, ...] = (
    "AbsmaxObserver", "AVGObserver", "MSEObserver", "EMDObserver", "HistObserver", "KLObserver",
)
#: observers of weights (per-channel or group-wise), by class name
WEIGHT_OBSERVERS: tuple[str, ...] = (
    "AbsMaxChannelWiseWeightObserver", "MSEChannelWiseWeightObserver", "GroupWiseWeightObserver",
)
#: every observer class, by name (used by the CLI and the conformance suite)
OBSERVERS: dict[str, type[ObserverBase]] = {
    cls.__name__: cls
    for cls in (
        AbsmaxObserver, AVGObserver, MSEObserver, EMDObserver, HistObserver, KLObserver,
        AbsMaxChannelWiseWeightObserver, MSEChannelWiseWeightObserver, GroupWiseWeightObserver,
    )
}

__all__ = [
    "ObserverBase", "Profile", "PROFILES", "ACTIVATION_OBSERVERS", "WEIGHT_OBSERVERS", "OBSERVERS",
    "AbsmaxObserver", "AVGObserver", "MSEObserver", "EMDObserver", "HistObserver", "KLObserver",
    "AbsMaxChannelWiseWeightObserver", "MSEChannelWiseWeightObserver", "GroupWiseWeightObserver",
]
