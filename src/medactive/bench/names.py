"""How strategies are named in tables and figures (``"coreset_l2"`` -> ``"Core-Set-L2"``).

Composed names (``SAMPLER:SCORE``, ``hybrid:A+B``, ``fusion:A+B``, see
:mod:`medactive.strategies.composed`) are shown by their parts: ``"power:bald"`` ->
``"Power(BALD)"``, ``"hybrid:margin+kmeans"`` -> ``"Hybrid(Margin → k-means)"``.
"""

from __future__ import annotations

#: display names of the survey's methods
DISPLAY_NAMES = {"random": "Random", "least_confidence": "Confidence", "entropy": "Entropy",
                 "margin": "Margin", "mean_variance": "Mean-Variance",
                 "bald": "BALD", "dbal": "DBAL", "badge": "BADGE",
                 "coreset_l2": "Core-Set-L2", "coreset_cosine": "Core-Set-Cosine"}
#: methods beyond the survey's benchmark, samplers, and strategy-name suffixes of loop variants
OTHER_NAMES = {"typiclust": "TypiClust", "random_balanced": "random_balanced",
               "kmeans": "k-means", "max_cover": "Max-Cover", "probcover": "ProbCover",
               "facility_location": "Facility-Location", "dal": "DAL", "vaal": "VAAL",
               "random_foreground": "random_foreground"}
SAMPLER_NAMES = {"topk": "Top-k", "power": "Power", "softmax": "Softmax", "rank": "Rank",
                 "stochastic_batches": "Stochastic-Batches", "cluster": "Cluster",
                 "kdpp": "k-DPP", "class_balanced": "Class-Balanced", "clasp": "ClaSP"}
SUFFIX_NAMES = {"ceal": "CEAL"}
_SUFFIXES = tuple(f"+{s}" for s in SUFFIX_NAMES)


def _plain(name: str) -> str:
    return DISPLAY_NAMES.get(name) or OTHER_NAMES.get(name, name)


def _composed(name: str) -> str:
    head, sep, rest = name.partition(":")
    if not sep:
        return _plain(name)
    if head == "hybrid":
        return f"Hybrid({' → '.join(_composed(p) for p in rest.split('+'))})"
    if head == "fusion":
        return f"Fusion({' + '.join(_plain(p) for p in rest.split('+'))})"
    return f"{SAMPLER_NAMES.get(head, head)}({_composed(rest)})"


def display_name(strategy: str) -> str:
    """The name a table shows: ``"entropy+ceal"`` -> ``"Entropy + CEAL"``.

    Example:
        >>> display_name("coreset_l2"), display_name("entropy+ceal")
        ('Core-Set-L2', 'Entropy + CEAL')
        >>> display_name("power:bald"), display_name("hybrid:margin+kmeans")
        ('Power(BALD)', 'Hybrid(Margin → k-means)')
        >>> display_name("softmax:fusion:entropy+bald+ceal")
        'Softmax(Fusion(Entropy + BALD)) + CEAL'
    """
    suffixes = []
    while strategy.endswith(_SUFFIXES):
        strategy, _, suffix = strategy.rpartition("+")
        suffixes.insert(0, SUFFIX_NAMES[suffix])
    return " + ".join([_composed(strategy), *suffixes])
