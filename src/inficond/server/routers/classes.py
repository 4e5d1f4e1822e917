from typing import Annotated

from fastapi import APIRouter, Query

from ..deps import EngineDep, ref
from ..schemas import ClassConcepts, SortKey, Suggestion, WhatIf

router = APIRouter(prefix="/api/classes", tags=["classes"])


@router.get("/{cls}/concepts", response_model=ClassConcepts,
            summary="Student knowledge view: a class's top-k concepts")
def class_concepts(engine: EngineDep, cls: str,
                   k: Annotated[int, Query(ge=1, le=200)] = 10,
                   sort: SortKey = "influence"):
    return engine.class_concepts(ref(cls, "class"), k=k, sort=sort)


@router.get("/{cls}/whatif/{concept}", response_model=WhatIf,
            summary="Metrics of the class when one concept's influence varies")
def whatif(engine: EngineDep, cls: str, concept: str,
           n_points: Annotated[int, Query(ge=3, le=201)] = 21):
    return engine.whatif(ref(cls, "class"), ref(concept, "concept"), n_points=n_points)


@router.get("/{cls}/suggestions", response_model=list[Suggestion],
            summary="Votes the engine expects to raise this class's AP")
def suggestions(engine: EngineDep, cls: str, k: Annotated[int, Query(ge=1, le=50)] = 5):
    return engine.suggest(ref(cls, "class"), k=k)
