"""The hourly alert hysteresis of the sepsis streaming part (:func:`next_alert`)."""

from __future__ import annotations

import pytest

from medseq.datasets.physionet2019_stream import next_alert
from medseq.serving.engine import AlertPolicy


def _run(policy: AlertPolicy, risks: list[float]) -> list[bool]:
    alert, run, out = False, 0, []
    for r in risks:
        alert, run = next_alert(policy, alert, run, r)
        out.append(alert)
    return out


def test_onset_after_k_hours_above_and_clear_after_m_below():
    policy = AlertPolicy(on=0.5, hysteresis=0.1, onset_steps=2, clear_steps=3)
    risks = [0.6, 0.4, 0.6, 0.7, 0.45, 0.3, 0.3, 0.6, 0.3, 0.3, 0.3, 0.3]
    # one hour above is not enough; two are; 0.45 is inside the gap (not "below");
    # a high hour restarts the count of low ones; three low ones clear it.
    assert _run(policy, risks) == [F, F, F, T, T, T, T, T, T, T, F, F]


def test_one_step_policy_is_a_plain_threshold():
    policy = AlertPolicy(on=0.5)
    assert _run(policy, [0.5, 0.49, 0.9, 0.1]) == [T, F, T, F]


@pytest.mark.parametrize("name", ["onset_steps", "clear_steps"])
def test_step_counts_below_one_are_refused(name):
    with pytest.raises(ValueError, match=name):
        AlertPolicy(on=0.5, **{name: 0})


T, F = True, False
