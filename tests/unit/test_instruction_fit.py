"""The batching correction of `bench/observe_instructions.py`: variants compared at the same
requests per group commit, with one cost per commit fitted over all runs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from observe_instructions import Slope, compare


def test_variants_are_compared_at_the_mean_batching_of_all_runs() -> None:
    # Each run costs its variant's base plus 240 K per commit, runs batching differently.
    base = {"off": 700.0, "metrics": 712.0, "traces": 730.0}
    commits = {"off": [0.05, 0.10], "metrics": [0.08, 0.04, 0.09], "traces": [0.07, 0.06]}
    slopes = {name: [Slope(base[name] + 240 * x, x) for x in commits[name]] for name in base}
    fitted = compare(slopes)
    assert fitted is not None
    per_commit, compared = fitted
    mean_commits = sum(sum(x) for x in commits.values()) / 7
    assert per_commit == pytest.approx(240)
    for name in base:
        assert compared[name].per_request == pytest.approx(base[name] + 240 * mean_commits)
        assert compared[name].error == pytest.approx(0, abs=1e-6)


def test_noise_gives_standard_errors_and_the_first_variant_none_against_itself() -> None:
    slopes = {
        "off": [Slope(724.0, 0.08), Slope(720.0, 0.06), Slope(731.0, 0.10)],
        "metrics": [Slope(735.0, 0.08), Slope(741.0, 0.09), Slope(733.0, 0.07)],
    }
    fitted = compare(slopes)
    assert fitted is not None
    _, compared = fitted
    assert compared["off"].difference_error == 0
    assert compared["metrics"].difference_error > compared["metrics"].error > 0


def test_without_runs_that_differ_in_batching_there_is_nothing_to_fit() -> None:
    assert compare({"off": [Slope(700, 0.1)], "metrics": [Slope(710, 0.1)]}) is None
    assert (
        compare({"off": [Slope(700, 0.1), Slope(701, 0.1)], "metrics": [Slope(710, 0.1)]}) is None
    )
