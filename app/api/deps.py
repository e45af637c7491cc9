"""Typed dependencies for the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.services import Services
from app.core.config import Settings
from app.rag.pipeline import AskPipeline


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_settings(services: ServicesDep) -> Settings:
    return services.settings


def get_pipeline(services: ServicesDep) -> AskPipeline:
    return services.pipeline


SettingsDep = Annotated[Settings, Depends(get_settings)]
AskPipelineDep = Annotated[AskPipeline, Depends(get_pipeline)]
