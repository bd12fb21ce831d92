"""The profile rules objects and the variant-per-profile mechanism (refquant.profiles)."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from refquant.profiles import (
    CANONICAL,
    PADDLESLIM,
    PROFILES,
    ProfileRules,
    ProfileVariants,
    get_profile,
    register_profile,
)


class Family(ProfileVariants):
    """A toy family: the variant decides ``kind``; the rules decide the scale shape."""

    def __init__(self, bits: int = 8, *, profile: str | ProfileRules = "canonical") -> None:
        self.bits = bits

    def shape(self) -> tuple[int, ...]:
        return self.rules.per_tensor_scale_shape


class _Exact(Family, profile=CANONICAL):
    kind = "exact"


class _Slim(Family, profile=PADDLESLIM):
    kind = "slim"


def test_names_resolve_to_the_registered_rules():
    assert PROFILES[:2] == ("canonical", "paddleslim")
    assert get_profile("canonical") is CANONICAL
    assert get_profile("paddleslim") is PADDLESLIM
    assert get_profile(PADDLESLIM) is PADDLESLIM


@pytest.mark.parametrize("bad, exc", [("PaddleSlim", ValueError), ("", ValueError),
                                      (None, TypeError), (1, TypeError), (b"canonical", TypeError)])
def test_bad_profile_names_the_argument(bad, exc):
    with pytest.raises(exc, match="profile"):
        get_profile(bad)
    with pytest.raises(exc, match="profile"):
        Family(profile=bad)


def test_rules_are_frozen_and_pickle_to_the_registered_object():
    with pytest.raises(dataclasses.FrozenInstanceError):
        CANONICAL.exact_merge = False  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(PADDLESLIM)) is PADDLESLIM


def test_construction_picks_the_variant_once():
    a, b, c = Family(4), Family(profile="paddleslim"), Family(profile=PADDLESLIM)
    assert (type(a), type(b), type(c)) == (_Exact, _Slim, _Slim)
    assert isinstance(b, Family)
    assert (a.kind, b.kind) == ("exact", "slim")
    assert (a.profile, b.profile) == ("canonical", "paddleslim")
    assert (a.shape(), b.shape()) == ((), (1,))
    assert a.bits == 4 and b.public_name == "Family"


def test_copy_and_pickle_keep_the_variant():
    b = Family(3, profile="paddleslim")
    for dup in (copy.copy(b), copy.deepcopy(b), pickle.loads(pickle.dumps(b))):
        assert type(dup) is _Slim and dup.bits == 3 and dup.rules is PADDLESLIM


def test_a_profile_without_variant_is_refused_by_name():
    other = register_profile(dataclasses.replace(CANONICAL, name="test-only-profile",
                                                 reproduces="nothing"))
    with pytest.raises(ValueError, match="test-only-profile"):
        Family(profile=other)


def test_registering_a_second_variant_for_a_profile_fails():
    with pytest.raises(TypeError, match="already has a variant"):
        class _Again(Family, profile=CANONICAL):  # noqa: F841
            pass


def test_registering_other_rules_under_a_taken_name_fails():
    with pytest.raises(ValueError, match="already registered"):
        register_profile(dataclasses.replace(PADDLESLIM, exact_merge=True))


def test_every_decision_field_differs_somewhere_or_is_documented():
    """Each field of ProfileRules is documented in its docstring (the rules are the one
    place a reader learns how profiles differ)."""
    doc = ProfileRules.__doc__ or ""
    for field in dataclasses.fields(ProfileRules):
        assert f"\n    {field.name}:" in doc, field.name


class RulesOnly(ProfileVariants):
    """A family without variants: one class, decisions read from the rules."""

    def __init__(self, *, profile: str | ProfileRules = "canonical") -> None:
        self.init = self.rules.moving_average_init


def test_a_family_without_variants_keeps_the_rules_it_was_built_with():
    a, b = RulesOnly(), RulesOnly(profile="paddleslim")
    assert type(a) is type(b) is RulesOnly
    assert (a.rules, b.rules) == (CANONICAL, PADDLESLIM)
    assert (a.init, b.init) == (0.0, 1.0)  # Paddle's layer starts state/accum at 1.0
    for dup in (copy.copy(b), copy.deepcopy(b), pickle.loads(pickle.dumps(b))):
        assert dup.rules is PADDLESLIM and dup.profile == "paddleslim"


def test_families_refuse_profiles_they_do_not_support():
    """A registered profile of another framework (torch) is refused by the PaddleSlim
    families by name, whether they have variants (MSEObserver) or only read rules
    (FakeQuanterWithAbsMaxObserver)."""
    from refquant.observers import MSEObserver
    from refquant.quanters import FakeQuanterWithAbsMaxObserver

    assert "torch" in get_profile("torch").name
    for cls in (MSEObserver, FakeQuanterWithAbsMaxObserver):
        with pytest.raises(ValueError, match="profile='torch'"):
            cls(profile="torch")
        assert cls(profile="paddleslim").profile == "paddleslim"
