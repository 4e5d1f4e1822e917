from fastapi import APIRouter

from ..deps import EngineDep
from ..schemas import Provenance, RevertRequest

router = APIRouter(prefix="/api/provenance", tags=["provenance"])


@router.get("", response_model=Provenance, summary="Fine-tuning provenance view")
def provenance(engine: EngineDep):
    return engine.provenance()


@router.post("/undo", response_model=Provenance, summary="Undo the last tuning step")
def undo(engine: EngineDep):
    return engine.undo()


@router.post("/revert", response_model=Provenance, summary="Make an earlier state the head")
def revert(engine: EngineDep, body: RevertRequest):
    return engine.revert(body.state_id)
