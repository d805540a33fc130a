"""Display names of strategies in tables and figures, plain and composed."""

from __future__ import annotations

import pytest

from medactive.bench.names import display_name


@pytest.mark.parametrize(("name", "shown"), [
    ("coreset_l2", "Core-Set-L2"),
    ("entropy+ceal", "Entropy + CEAL"),
    ("kmeans", "k-means"),
    ("power:bald", "Power(BALD)"),
    ("cluster:margin", "Cluster(Margin)"),
    ("hybrid:margin+kmeans", "Hybrid(Margin → k-means)"),
    ("hybrid:power:margin+coreset_l2", "Hybrid(Power(Margin) → Core-Set-L2)"),
    ("fusion:margin+typiclust", "Fusion(Margin + TypiClust)"),
    ("softmax:fusion:entropy+bald", "Softmax(Fusion(Entropy + BALD))"),
    ("clasp:margin+ceal", "ClaSP(Margin) + CEAL"),
    ("unregistered_name", "unregistered_name"),
])
def test_display_name(name, shown):
    assert display_name(name) == shown
