"""roadmap_lib.scaling: power-law fits."""

import pytest

from roadmap_lib.scaling import fit_power_law


def test_fit_power_law_recovers_exponent():
    x = [10, 20, 40, 80]
    p, c = fit_power_law(x, [3.0 * n**2.5 for n in x])
    assert abs(p - 2.5) < 1e-9 and abs(c - 3.0) < 1e-9
    with pytest.raises(ValueError, match="at least 2 points"):
        fit_power_law([1], [1])




@pytest.mark.parametrize("x, y, match", [
    ([1, 2, 3], [1, 2], "one length"),
    ([0, 1, 2], [1, 2, 3], "positive"),
    ([1, 2, 3], [1, -2, 3], "positive"),
])
def test_fit_power_law_refuses_bad_input(x, y, match):
    with pytest.raises(ValueError, match=match):
        fit_power_law(x, y)
