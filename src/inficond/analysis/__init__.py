"""Pure analysis functions on numpy arrays: metrics, alignment subsets, presence
discrepancy, what-if curves, tuning suggestions and the concept map.

Nothing here touches the workspace; the session facade loads arrays and calls these.
Predictions are positive when ``logit > 0`` (probability 0.5), for teacher and student alike.
A student for class ``k`` is ``coef[k] (C,)`` and ``intercept[k]`` on standardised concepts
``Z = (X - mean) / scale``; ``coef[k, c]`` is concept ``c``'s influence on class ``k``.
"""

from inficond.analysis.alignment import CATEGORIES, alignment, alignment_change, alignment_per_class
from inficond.analysis.concept_map import concept_map, extend_concept_map, scale_to_unit
from inficond.analysis.discrepancy import (
    RANKINGS,
    concept_class_influence,
    presence_discrepancy,
    rank_concepts,
    top_images,
)
from inficond.analysis.metrics import (
    METRICS,
    all_class_metrics,
    average_precision_batch,
    class_metrics,
    fidelity,
    metrics_batch,
    predictions,
    threshold_metrics_batch,
)
from inficond.analysis.suggest import suggest_moves
from inficond.analysis.whatif import influence_grid, standardize, whatif_curves, whatif_scores

__all__ = [
    "CATEGORIES", "METRICS", "RANKINGS",
    "predictions", "class_metrics", "all_class_metrics", "fidelity",
    "average_precision_batch", "threshold_metrics_batch", "metrics_batch",
    "alignment", "alignment_per_class", "alignment_change",
    "presence_discrepancy", "rank_concepts", "top_images", "concept_class_influence",
    "standardize", "influence_grid", "whatif_scores", "whatif_curves",
    "suggest_moves",
    "concept_map", "extend_concept_map", "scale_to_unit",
]
