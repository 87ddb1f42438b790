"""Rollout identity (pure): which rollout each call belongs to."""

from __future__ import annotations

import pytest

from puerta.domain.hooks import HookType
from puerta.domain.rollouts import CurrentRollout, Resolution, RolloutStatus, resolve

S = RolloutStatus
H = HookType


def current(status: RolloutStatus, revision: str = "", seq: int = 1) -> CurrentRollout:
    return CurrentRollout(seq=seq, status=status, revision=revision)


@pytest.mark.parametrize(
    ("now", "hook", "phase", "checksum", "expected"),
    [
        # confirm-rollout joins a rollout waiting for it (and a retry after it passed) ...
        (
            None,
            H.CONFIRM_ROLLOUT,
            "Initialized",
            "old",
            Resolution(attach=True, open_new=True, new_status=S.PENDING),
        ),
        (current(S.PENDING), H.CONFIRM_ROLLOUT, "Waiting", "old", Resolution(attach=True)),
        (current(S.CONFIRMED), H.CONFIRM_ROLLOUT, "Waiting", "old", Resolution(attach=True)),
        # ... and otherwise starts the next one
        (
            current(S.SUCCEEDED, "old"),
            H.CONFIRM_ROLLOUT,
            "Succeeded",
            "old",
            Resolution(attach=True, open_new=True, new_status=S.PENDING),
        ),
        (
            current(S.PROGRESSING, "old"),
            H.CONFIRM_ROLLOUT,
            "Succeeded",
            "old",
            Resolution(
                attach=True, open_new=True, close_current_as=S.SUPERSEDED, new_status=S.PENDING
            ),
        ),
        # progressing hooks learn the revision
        (
            current(S.CONFIRMED),
            H.PRE_ROLLOUT,
            "Progressing",
            "new",
            Resolution(attach=True, new_status=S.PROGRESSING, revision="new"),
        ),
        (current(S.PROGRESSING, "new"), H.ROLLOUT, "Progressing", "new", Resolution(attach=True)),
        (
            current(S.PROGRESSING, "new"),
            H.ROLLOUT,
            "Progressing",
            "newer",
            Resolution(
                attach=True,
                open_new=True,
                close_current_as=S.SUPERSEDED,
                new_status=S.PROGRESSING,
                revision="newer",
            ),
        ),
        (
            current(S.SUCCEEDED, "new"),
            H.PRE_ROLLOUT,
            "Progressing",
            "newer",
            Resolution(attach=True, open_new=True, new_status=S.PROGRESSING, revision="newer"),
        ),
        # post-rollout finishes
        (
            current(S.PROGRESSING, "new"),
            H.POST_ROLLOUT,
            "Failed",
            "new",
            Resolution(attach=True, new_status=S.FAILED),
        ),
        (current(S.FAILED, "new"), H.POST_ROLLOUT, "Failed", "new", Resolution(attach=True)),
        # events follow their phase, but never end a rollout still waiting to start
        (current(S.PENDING), H.EVENT, "Succeeded", "old", Resolution(attach=True)),
        (
            current(S.PROGRESSING, "new"),
            H.EVENT,
            "Succeeded",
            "new",
            Resolution(attach=True, new_status=S.SUCCEEDED),
        ),
        (None, H.EVENT, "Initializing", "", Resolution(attach=False)),
        # ... and never learn the revision: "New revision detected!" carries the old checksum
        (
            current(S.CONFIRMED),
            H.EVENT,
            "Progressing",
            "old",
            Resolution(attach=True, new_status=S.PROGRESSING),
        ),
        (current(S.PROGRESSING, "new"), H.EVENT, "Progressing", "old", Resolution(attach=True)),
        # ... and never open one: late events of a finished rollout carry a lagging phase
        (current(S.SUCCEEDED, "new"), H.EVENT, "Finalising", "new", Resolution(attach=True)),
        (current(S.FAILED, "new"), H.EVENT, "Progressing", "new", Resolution(attach=True)),
        (None, H.EVENT, "Progressing", "new", Resolution(attach=False)),
        # a confirm-rollout that passed, called again with another checksum: a new Canary
        (
            CurrentRollout(seq=1, status=S.CONFIRMED, revision="", base_checksum="old"),
            H.CONFIRM_ROLLOUT,
            "Initialized",
            "other",
            Resolution(
                attach=True, open_new=True, close_current_as=S.SUPERSEDED, new_status=S.PENDING
            ),
        ),
    ],
)
def test_resolution(
    now: CurrentRollout | None, hook: HookType, phase: str, checksum: str, expected: Resolution
) -> None:
    assert resolve(now, hook, phase, checksum) == expected
