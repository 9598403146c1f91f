"""The transition record round-trips exactly and refuses bytes it cannot trust."""
from __future__ import annotations

import numpy as np
import pytest

from inril_core.transitions import HEADER, Transition, TransitionFormatError, decode, encode


def _transition(last: bool = False) -> Transition:
    rng = np.random.default_rng(0)
    return Transition(policy_version=3, episode=12, chunk=7, stamp=104.25, obs=rng.normal(size=19),
                      next_obs=rng.normal(size=19), actions=rng.normal(size=(4, 7)),
                      chain=rng.normal(size=(11, 4, 7)), last=last)


@pytest.mark.parametrize("last", [False, True])
def test_transition_round_trips(last: bool) -> None:
    t = _transition(last)
    back = decode(encode(t))
    assert (back.policy_version, back.episode, back.chunk, back.stamp, back.last) == (3, 12, 7, 104.25, last)
    for name in ("obs", "next_obs", "actions", "chain"):
        np.testing.assert_array_equal(getattr(back, name), getattr(t, name).astype(np.float32))


def test_other_layout_version_is_refused_with_the_fix() -> None:
    data = bytearray(encode(_transition()))
    data[4:6] = (99).to_bytes(2, "little")
    with pytest.raises(TransitionFormatError, match="layout version 99.*same inril version"):
        decode(bytes(data))


@pytest.mark.parametrize("cut", [HEADER.size - 1, HEADER.size + 10])
def test_truncated_record_is_refused(cut: int) -> None:
    with pytest.raises(TransitionFormatError):
        decode(encode(_transition())[:cut])


def test_foreign_bytes_are_refused() -> None:
    with pytest.raises(TransitionFormatError, match="magic"):
        decode(b"\x00" * 200)


def test_inconsistent_shapes_never_leave_the_encoder() -> None:
    t = _transition()
    bad = Transition(t.policy_version, t.episode, t.chunk, t.stamp, t.obs, t.next_obs[:5], t.actions, t.chain)
    with pytest.raises(TransitionFormatError, match="inconsistent shapes"):
        encode(bad)
