from typing import Annotated, Optional

from fastapi import APIRouter, Query

from inficond.session import MAX_ADDED_CONCEPTS

from ..deps import EngineDep, ref
from ..schemas import AddConceptsRequest, AddConceptsResult, ConceptDetail, ConceptMap

router = APIRouter(prefix="/api/concepts", tags=["concepts"])


@router.get("/map", response_model=ConceptMap, summary="Concept embedding view: 2-D t-SNE map")
def concept_map(engine: EngineDep):
    return engine.concept_map()


@router.get("/{concept}", response_model=ConceptDetail,
            summary="Concept detail view: gallery, patches, classes and (with cls) what-if curves")
def concept_detail(engine: EngineDep, concept: str,
                   cls: Annotated[Optional[str], Query(description="class index or name")] = None,
                   factor: Annotated[Optional[float], Query(gt=0, le=2, description="vote strength to preview")] = None):
    return engine.concept_detail(ref(concept, "concept"),
                                 cls=None if cls is None else ref(cls, "class"), factor=factor)


@router.post("", response_model=AddConceptsResult, summary="Add concept words to the corpus")
def add_concepts(engine: EngineDep, body: AddConceptsRequest):
    words = [w.strip() for w in body.words]
    # Not engine.add_concepts (the whole call under the lock): the session encodes the words
    # unlocked (the first time loads the text model, ~16 s) and locks only to commit them.
    return engine.session.add_concepts(words, max_added=MAX_ADDED_CONCEPTS)
