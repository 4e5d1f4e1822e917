from typing import Annotated, Optional

from fastapi import APIRouter, HTTPException, Query

from ..deps import EngineDep, ref
from ..schemas import ClassConcepts, ConceptSearch, SortKey, Suggestion, WhatIf

router = APIRouter(prefix="/api/classes", tags=["classes"])


@router.get("/{cls}/concepts", response_model=ClassConcepts,
            summary="Student knowledge view: a class's top-k concepts")
def class_concepts(engine: EngineDep, cls: str,
                   k: Annotated[int, Query(ge=1, le=200)] = 10,
                   sort: SortKey = "influence"):
    return engine.class_concepts(ref(cls, "class"), k=k, sort=sort)


@router.get("/{cls}/concepts/search", response_model=ConceptSearch,
            summary="Every corpus word containing q, with its influence on the class (any concept can be voted)")
def search_concepts(engine: EngineDep, cls: str, q: Annotated[str, Query(min_length=1, max_length=100)],
                    limit: Annotated[int, Query(ge=1, le=200)] = 20):
    if not q.strip():
        raise HTTPException(422, "query field 'q' is empty: type part of a concept word")
    return engine.search_concepts(ref(cls, "class"), q, limit=limit)


@router.get("/{cls}/whatif/{concept}", response_model=WhatIf,
            summary="Metrics of the class when one concept's influence varies; with factor, where a vote would put it")
def whatif(engine: EngineDep, cls: str, concept: str,
           n_points: Annotated[int, Query(ge=3, le=201)] = 21,
           factor: Annotated[Optional[float], Query(gt=0, le=2, description="vote strength to preview")] = None):
    return engine.whatif(ref(cls, "class"), ref(concept, "concept"), n_points=n_points, factor=factor)


@router.get("/{cls}/suggestions", response_model=list[Suggestion],
            summary="Votes the engine expects to raise this class's AP")
def suggestions(engine: EngineDep, cls: str, k: Annotated[int, Query(ge=1, le=50)] = 5,
                shortcuts: Annotated[int, Query(ge=0, le=10, description=(
                    "also score up to this many suspected shortcuts as erase-downvotes (kind 'shortcut'); "
                    "each costs a refit"))] = 0):
    # Off by default: the page's suggestion chips send plain votes, and a shortcut suggestion's gain
    # holds only when applied with erase; each suspect also costs a refit under the engine lock.
    if shortcuts:
        return engine.suggest(ref(cls, "class"), k=k, shortcuts=shortcuts)
    # Plain moves: the session reads one state under its lock and scores outside it, so other
    # views' requests (the next class's concepts) are answered meanwhile.
    return engine.session.suggest(ref(cls, "class"), k=k, shortcuts=0)
