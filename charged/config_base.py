"""What every section of the configuration is built from (``charged.config``,
``charged.config_service``, ``charged.config_site``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """A YAML section: an unknown key is an error, and settings do not change once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
