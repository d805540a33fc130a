"""The survey's benchmark results (Wang et al. 2024, §6.2, Tables 6-8), for side-by-side reports.

Typed in from the text of the survey (``reference/survey-deep-active-learning-medical-imaging
.txt``). Values are in the survey's units: accuracy in %, AUC and Dice in [0, 1], ASD in mm.
Each table has the test metric of the initial model (the same initial set for every method,
printed once per table) and the mean ± std over 5 seeds after each of the 5 rounds. Strategy
keys are medactive's registered names (Confidence = ``least_confidence``).

Known gaps of the source text: Table 7 prints no "Fully supervised" value; in Table 8(b) the
text extraction garbled the Margin row (rounds 1-2 read 6.04/4.03 on the Margin line and
6.64/4.65 on a duplicate line); the Margin line's reading is used here.

References:
    Wang et al., "A comprehensive survey on deep active learning in medical image analysis",
    Medical Image Analysis 95, 2024, Tables 6-8.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MeanStd = tuple[float, float]


@dataclass(frozen=True)
class SurveyTable:
    """One sub-table of the survey.

    Attributes:
        key: e.g. ``"table6a"``.
        dataset: survey dataset key (``"nct"``, ``"isic"``, ``"acdc"``).
        budget: the budget ``b``.
        metric: medactive's metric name (``"test_accuracy"``, ``"test_auc"``, ...).
        scale: survey value = ``scale`` x medactive value (accuracy: 100).
        caption: the survey's caption, shortened.
        labels: number of labels before training each reported model ``[T + 1]``.
        initial: metric of the initial model (round 0, same for all methods).
        rows: ``strategy -> [(mean, std)] * T`` for rounds 1..T.
        supervised: the "Fully supervised" value, or ``None`` if the survey gives none.
        notes: transcription notes.
    """

    key: str
    dataset: str
    budget: int
    metric: str
    scale: float
    caption: str
    labels: tuple[int, ...]
    initial: float
    rows: dict[str, tuple[MeanStd, ...]] = field(default_factory=dict)
    supervised: float | None = None
    notes: str = ""


def _labels(budget: int, rounds: int = 5) -> tuple[int, ...]:
    return tuple(budget * (r + 1) for r in range(rounds + 1))


TABLES: tuple[SurveyTable, ...] = (
    SurveyTable(
        key="table6a", dataset="nct", budget=50, metric="test_accuracy", scale=100.0,
        caption="Table 6(a): NCT-CRC-HE-100K test accuracy (%), low budget b = 50",
        labels=_labels(50), initial=60.46, supervised=93.36,
        rows={
            "random": ((64.39, 0.34), (66.80, 3.66), (71.77, 3.35), (73.55, 2.38),
                       (75.87, 1.21)),
            "least_confidence": ((63.61, 2.49), (66.16, 3.12), (66.29, 3.84), (70.65, 2.85),
                                 (71.69, 0.97)),
            "entropy": ((62.65, 0.79), (65.66, 1.31), (68.78, 2.34), (69.12, 2.99),
                        (68.86, 3.84)),
            "margin": ((70.65, 2.20), (71.33, 1.54), (75.93, 3.00), (74.64, 4.21),
                       (76.61, 2.90)),
            "bald": ((62.13, 1.09), (64.17, 4.20), (69.34, 4.53), (66.94, 2.50), (68.49, 2.75)),
            "dbal": ((61.73, 2.43), (63.76, 5.33), (67.80, 1.78), (67.90, 3.06), (71.48, 3.38)),
            "badge": ((68.52, 6.57), (72.27, 3.45), (74.69, 0.85), (75.96, 2.65),
                      (75.74, 2.22)),
            "coreset_l2": ((62.73, 4.33), (66.26, 2.44), (64.72, 3.94), (66.25, 2.98),
                           (64.66, 1.24)),
            "coreset_cosine": ((63.07, 1.84), (63.12, 4.20), (69.32, 1.37), (68.25, 2.30),
                               (68.21, 3.48)),
        }),
    SurveyTable(
        key="table6b", dataset="nct", budget=1000, metric="test_accuracy", scale=100.0,
        caption="Table 6(b): NCT-CRC-HE-100K test accuracy (%), high budget b = 1000",
        labels=_labels(1000), initial=83.38, supervised=93.36,
        rows={
            "random": ((87.16, 1.43), (87.68, 1.15), (89.00, 0.91), (89.04, 2.41),
                       (89.09, 1.08)),
            "least_confidence": ((87.93, 0.76), (87.46, 0.96), (88.45, 0.64), (90.01, 1.22),
                                 (87.93, 3.04)),
            "entropy": ((89.39, 0.23), (86.54, 2.33), (87.70, 2.25), (88.04, 2.89),
                        (89.06, 1.57)),
            "margin": ((88.60, 0.62), (88.05, 1.83), (88.13, 1.74), (89.90, 0.63),
                       (86.89, 2.99)),
            "bald": ((87.01, 0.99), (85.85, 1.96), (90.11, 0.53), (89.19, 2.46), (88.24, 2.21)),
            "dbal": ((89.55, 0.75), (86.56, 1.86), (86.92, 3.62), (88.76, 1.97), (88.44, 0.53)),
            "badge": ((87.31, 0.51), (87.56, 0.90), (88.66, 2.33), (88.39, 0.97),
                      (87.17, 1.30)),
            "coreset_l2": ((86.82, 0.37), (88.99, 1.74), (89.92, 0.98), (89.34, 1.87),
                           (88.64, 3.10)),
            "coreset_cosine": ((87.40, 0.49), (88.09, 2.35), (89.51, 1.20), (89.80, 3.01),
                               (87.19, 2.78)),
        }),
    SurveyTable(
        key="table7a", dataset="isic", budget=50, metric="test_auc", scale=1.0,
        caption="Table 7(a): ISIC 2020 test AUC, low budget b = 50",
        labels=_labels(50), initial=0.574, supervised=None,
        notes="No 'Fully supervised' value in the source text.",
        rows={
            "random": ((0.5609, 0.0325), (0.5408, 0.0228), (0.5807, 0.0391), (0.5679, 0.0632),
                       (0.6143, 0.0610)),
            "least_confidence": ((0.5432, 0.0233), (0.5713, 0.0472), (0.5622, 0.0302),
                                 (0.5584, 0.0171), (0.5649, 0.0794)),
            "entropy": ((0.5375, 0.0182), (0.5432, 0.0209), (0.5919, 0.0413), (0.5537, 0.0383),
                        (0.5543, 0.0220)),
            "bald": ((0.5865, 0.0235), (0.5828, 0.0499), (0.5818, 0.0800), (0.5977, 0.0273),
                     (0.5682, 0.0313)),
            "dbal": ((0.5322, 0.0300), (0.5344, 0.0226), (0.5601, 0.0341), (0.5879, 0.0274),
                     (0.5442, 0.0350)),
            "badge": ((0.5601, 0.0373), (0.5648, 0.0333), (0.6219, 0.0757), (0.6246, 0.0894),
                      (0.6172, 0.0890)),
            "coreset_l2": ((0.5834, 0.0344), (0.6761, 0.0382), (0.5956, 0.0610),
                           (0.5934, 0.0464), (0.6313, 0.0867)),
            "coreset_cosine": ((0.5459, 0.0367), (0.6361, 0.0621), (0.6032, 0.0402),
                               (0.6127, 0.0586), (0.6317, 0.0797)),
        }),
    SurveyTable(
        key="table7b", dataset="isic", budget=1000, metric="test_auc", scale=1.0,
        caption="Table 7(b): ISIC 2020 test AUC, high budget b = 1000",
        labels=_labels(1000), initial=0.644, supervised=None,
        notes="No 'Fully supervised' value in the source text.",
        rows={
            "random": ((0.6898, 0.0216), (0.7258, 0.0249), (0.7556, 0.0236), (0.7551, 0.0157),
                       (0.7718, 0.0124)),
            "least_confidence": ((0.7058, 0.0120), (0.7525, 0.0069), (0.7760, 0.0171),
                                 (0.7957, 0.0184), (0.7949, 0.0113)),
            "entropy": ((0.7063, 0.0144), (0.7478, 0.0090), (0.7692, 0.0117), (0.7838, 0.0062),
                        (0.7875, 0.0101)),
            "bald": ((0.6851, 0.0156), (0.7489, 0.0144), (0.7683, 0.0097), (0.7947, 0.0098),
                     (0.7837, 0.0073)),
            "dbal": ((0.7120, 0.0195), (0.7613, 0.0053), (0.7616, 0.0261), (0.7896, 0.0120),
                     (0.7883, 0.0127)),
            "badge": ((0.7074, 0.0264), (0.7456, 0.0103), (0.7734, 0.0150), (0.7983, 0.0100),
                      (0.7917, 0.0064)),
            "coreset_l2": ((0.7304, 0.0303), (0.7511, 0.0156), (0.7499, 0.0106),
                           (0.7588, 0.0056), (0.7575, 0.0067)),
            "coreset_cosine": ((0.7288, 0.0236), (0.7593, 0.0177), (0.7807, 0.0182),
                               (0.7925, 0.0135), (0.7917, 0.0109)),
        }),
    SurveyTable(
        key="table8a", dataset="acdc", budget=10, metric="test_dice_mean", scale=1.0,
        caption="Table 8(a): ACDC test mean DSC, b = 10 slices",
        labels=_labels(10), initial=0.4966, supervised=0.9045,
        rows={
            "random": ((0.7872, 0.0552), (0.8285, 0.0379), (0.8657, 0.0063), (0.8656, 0.0089),
                       (0.8721, 0.0047)),
            "least_confidence": ((0.6805, 0.0205), (0.7499, 0.0336), (0.8347, 0.0203),
                                 (0.8696, 0.0057), (0.8717, 0.0065)),
            "entropy": ((0.6888, 0.0088), (0.7712, 0.0393), (0.8538, 0.0117), (0.8639, 0.0062),
                        (0.8714, 0.0040)),
            "margin": ((0.6841, 0.0124), (0.7360, 0.0338), (0.8214, 0.0535), (0.8640, 0.0096),
                       (0.8734, 0.0053)),
            "badge": ((0.8192, 0.0144), (0.8486, 0.0151), (0.8632, 0.0060), (0.8731, 0.0032),
                      (0.8698, 0.0080)),
            "coreset_l2": ((0.8112, 0.0210), (0.8491, 0.0144), (0.8570, 0.0074),
                           (0.8572, 0.0057), (0.8660, 0.0073)),
            "coreset_cosine": ((0.7344, 0.0234), (0.8248, 0.0109), (0.8458, 0.0225),
                               (0.8549, 0.0204), (0.8678, 0.0089)),
        }),
    SurveyTable(
        key="table8b", dataset="acdc", budget=10, metric="test_asd_mean", scale=1.0,
        caption="Table 8(b): ACDC test mean ASD (mm, lower is better), b = 10 slices",
        labels=_labels(10), initial=11.36, supervised=2.09,
        notes="Margin rounds 1-2 are garbled in the source text (6.04 or 6.64; 4.03 or 4.65).",
        rows={
            "random": ((4.71, 1.13), (2.82, 0.37), (3.13, 0.48), (2.05, 0.70), (2.21, 0.73)),
            "least_confidence": ((6.63, 2.05), (3.60, 1.39), (2.86, 0.39), (2.21, 0.98),
                                 (2.22, 0.62)),
            "entropy": ((7.80, 1.70), (3.27, 1.22), (3.00, 1.08), (2.24, 1.23), (2.67, 0.84)),
            "margin": ((6.04, 3.17), (4.03, 1.94), (2.66, 0.76), (3.08, 1.02), (3.22, 1.41)),
            "badge": ((4.22, 1.10), (4.14, 0.32), (3.10, 0.70), (2.62, 0.81), (2.56, 0.97)),
            "coreset_l2": ((3.22, 0.69), (2.84, 0.66), (2.71, 0.76), (3.40, 1.31), (2.86, 0.76)),
            "coreset_cosine": ((4.75, 1.57), (2.74, 0.52), (3.50, 1.36), (2.33, 0.88),
                               (1.85, 0.31)),
        }),
)


def survey_table(dataset: str, budget: int, metric: str) -> SurveyTable | None:
    """The survey table for ``(dataset, budget, metric)``, or ``None``.

    Example:
        >>> survey_table("acdc", 10, "test_dice_mean").supervised
        0.9045
    """
    for table in TABLES:
        if (table.dataset, table.budget, table.metric) == (dataset, budget, metric):
            return table
    return None


def survey_tables_for(dataset: str, metric: str) -> list[SurveyTable]:
    """Every budget's table of a survey dataset and metric (e.g. Table 6a and 6b)."""
    return [t for t in TABLES if t.dataset == dataset and t.metric == metric]
