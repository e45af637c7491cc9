from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import ServicesDep
from app.api.schemas import AdapterInfo, AdaptersResponse

router = APIRouter(prefix="/v1", tags=["adapters"])


@router.get("/adapters", response_model=AdaptersResponse)
async def list_adapters(services: ServicesDep) -> AdaptersResponse:
    """The LoRA adapters the LLM server serves (vLLM --lora-modules), usable as `adapter` in /v1/ask."""
    served = await services.llm.list_adapters()
    return AdaptersResponse(
        adapters=[AdapterInfo(name=a.name, base=a.base, path=a.path) for a in served],
        collection_defaults=services.settings.collection_adapters,
    )
