"""Quanter families on refquant.profiles: variants chosen once, rules read, new profiles."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import numpy as np
import pytest

from refquant.profiles import CANONICAL, PADDLESLIM, register_profile
from refquant.quanters import (
    ActLSQplusQuanter,
    FakeQuanterChannelWiseAbsMaxObserver,
    FakeQuanterWithAbsMaxObserver,
    PACTQuanter,
    WeightLSQplusQuanter,
)

F32 = np.float32
VARIANT_FAMILIES = (PACTQuanter, WeightLSQplusQuanter, ActLSQplusQuanter)
RULES_FAMILIES = (FakeQuanterWithAbsMaxObserver, FakeQuanterChannelWiseAbsMaxObserver)


def _make(cls: type, profile: object) -> object:
    if cls is PACTQuanter:
        return cls(FakeQuanterWithAbsMaxObserver(profile=profile), profile=profile)
    return cls(profile=profile)


@pytest.mark.parametrize("cls", VARIANT_FAMILIES + RULES_FAMILIES)
@pytest.mark.parametrize("profile", ["canonical", "paddleslim", CANONICAL, PADDLESLIM])
def test_public_class_builds_its_profile(cls, profile):
    q = _make(cls, profile)
    name = getattr(profile, "name", profile)
    assert isinstance(q, cls) and type(q).family is cls
    assert q.profile == name and q.rules.name == name
    assert repr(q) == f"{cls.__name__}(profile={name!r})"
    for dup in (copy.copy(q), copy.deepcopy(q), pickle.loads(pickle.dumps(q))):
        assert type(dup) is type(q) and dup.rules is q.rules


@pytest.mark.parametrize("cls", VARIANT_FAMILIES)
def test_variant_families_have_one_class_per_profile(cls):
    a, b = _make(cls, "canonical"), _make(cls, "paddleslim")
    assert type(a) is not type(b) and cls not in (type(a), type(b))
    with pytest.raises(ValueError, match="profile"):  # a variant built for the other profile
        type(a)(profile="paddleslim")


@pytest.mark.parametrize("cls", RULES_FAMILIES)
def test_rules_families_are_one_class(cls):
    assert type(_make(cls, "canonical")) is type(_make(cls, "paddleslim")) is cls


def test_pact_refuses_an_inner_quanter_of_another_profile():
    inner = FakeQuanterWithAbsMaxObserver(profile="canonical")
    with pytest.raises(ValueError, match="profile='canonical'"):
        PACTQuanter(inner, profile="paddleslim")


def test_a_new_profile_runs_the_rules_families_and_is_refused_by_the_variant_ones(
        monkeypatch):
    """A profile that is canonical except for Paddle's initial moving-average state. A
    rules-only family runs it once the family lists it in ``supported_profiles`` (and
    refuses it before that: a profile registered for another framework must not silently
    drive PaddleSlim's quanters)."""
    rules = register_profile(dataclasses.replace(
        CANONICAL, name="test-quanters-paddle-init", reproduces="nothing",
        moving_average_init=1.0))
    with pytest.raises(ValueError, match="test-quanters-paddle-init"):
        FakeQuanterWithAbsMaxObserver(0.9, profile=rules)
    supported = FakeQuanterWithAbsMaxObserver.supported_profiles or ()
    monkeypatch.setattr(FakeQuanterWithAbsMaxObserver, "supported_profiles",
                        (*supported, rules.name))
    q = FakeQuanterWithAbsMaxObserver(0.9, profile=rules)
    q.forward(np.array([0.5, -2.0], F32))
    # by hand: state = 0.9 * 1 + 1, accum = 0.9 * 1 + max|x|, S = accum / state (float32)
    state = F32(F32(F32(0.9) * F32(1.0)) + F32(1.0))
    accum = F32(F32(F32(0.9) * F32(1.0)) + F32(2.0))
    assert q.scales().view(np.uint32).tolist() == [F32(accum / state).view(np.uint32)]
    assert q.zero_points().tolist() == [0]  # the canonical rule for zero points is kept
    for cls in VARIANT_FAMILIES:
        with pytest.raises(ValueError, match="test-quanters-paddle-init"):
            _make(cls, rules)
