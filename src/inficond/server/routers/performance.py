from typing import Literal

from fastapi import APIRouter

from ..deps import EngineDep
from ..schemas import Performance

router = APIRouter(prefix="/api/performance", tags=["performance"])


@router.get("", response_model=Performance, summary="Student performance view: per-class metrics")
def get_performance(engine: EngineDep, split: Literal["train", "val", "test"] = "val"):
    return engine.performance(split=split)
