from fastapi import APIRouter

from ..deps import EngineDep
from ..schemas import Summary

router = APIRouter(prefix="/api/summary", tags=["summary"])


@router.get("", response_model=Summary, summary="Configuration view: dataset, models, corpus, student")
def get_summary(engine: EngineDep):
    return engine.summary()
