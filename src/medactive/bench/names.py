"""How strategies are named in tables and figures (``"coreset_l2"`` -> ``"Core-Set-L2"``)."""

from __future__ import annotations

#: display names of the survey's methods
DISPLAY_NAMES = {"random": "Random", "least_confidence": "Confidence", "entropy": "Entropy",
                 "margin": "Margin", "mean_variance": "Mean-Variance",
                 "bald": "BALD", "dbal": "DBAL", "badge": "BADGE",
                 "coreset_l2": "Core-Set-L2", "coreset_cosine": "Core-Set-Cosine"}
#: methods beyond the survey's benchmark, and strategy-name suffixes of loop variants
OTHER_NAMES = {"typiclust": "TypiClust"}
SUFFIX_NAMES = {"ceal": "CEAL"}


def display_name(strategy: str) -> str:
    """The name a table shows: ``"entropy+ceal"`` -> ``"Entropy + CEAL"``.

    Example:
        >>> display_name("coreset_l2"), display_name("entropy+ceal")
        ('Core-Set-L2', 'Entropy + CEAL')
    """
    base, *suffixes = strategy.split("+")
    names = [DISPLAY_NAMES.get(base) or OTHER_NAMES.get(base, base)]
    return " + ".join(names + [SUFFIX_NAMES.get(x, x) for x in suffixes])
