"""``check_probas``: each kind of bad probability array gets its own message, no warning."""

import warnings

import numpy as np
import pytest

from medactive._validation import check_probas


@pytest.mark.parametrize("bad,message", [
    ([[0.5, np.nan], [0.5, 0.5]], "contains 1 NaN or infinite values"),
    ([[np.inf, -np.inf], [0.5, 0.5]], "contains 2 NaN or infinite values"),
    ([[1.5, -0.5]], "contains negative values"),
    ([[1e308, 1e308]], "must sum to 1 along axis 1"),
    ([[0.2, 0.2]], "must sum to 1 along axis 1"),
])
def test_bad_probabilities_are_named(bad, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the sums of inf - inf must not warn
        with pytest.raises(ValueError, match=message):
            check_probas(np.array(bad))


def test_good_probabilities_come_back_as_float64():
    out = check_probas(np.array([[0.25, 0.75], [1.0, 0.0]], dtype=np.float32))
    assert out.dtype == np.float64 and out.tolist() == [[0.25, 0.75], [1.0, 0.0]]
