from fastapi import APIRouter

from ..deps import EngineDep
from ..schemas import TuneRequest, TuneResult

router = APIRouter(prefix="/api/tune", tags=["tuning"])


@router.post("", response_model=TuneResult, summary="Fine-tune with uptune/downtune votes")
def tune(engine: EngineDep, body: TuneRequest):
    instructions = [
        {"class": i.class_, "concept": i.concept, "direction": i.direction}
        for i in body.instructions
    ]
    return engine.tune(instructions, factor=body.factor, on_conflict=body.on_conflict, mode=body.mode,
                       erase=body.erase, erase_how=body.erase_how, label_weight=body.label_weight)
