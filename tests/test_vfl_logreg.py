"""The secret-sharing engine's example: vertical logistic regression on shares, on Ray,
within 1 percentage point of the same training in plaintext numpy."""

from __future__ import annotations

import numpy as np
import pytest


def test_vertical_logistic_regression_matches_plaintext():
    pytest.importorskip("sklearn")
    from cipherray.workloads.vfl.ss_logreg import VflLogregConfig, plaintext_reference, run

    cfg = VflLogregConfig(backend="ray", epochs=5)
    report = run(cfg)
    ref = plaintext_reference(cfg)
    assert ref["accuracy"] > 0.95
    assert abs(report["accuracy"] - ref["accuracy"]) <= 0.01
    np.testing.assert_allclose(report["w"], ref["w"], atol=5e-3)
