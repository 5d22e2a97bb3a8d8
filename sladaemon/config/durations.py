"""The pydantic field types of durations and periods (parsing and formatting live in
``sladaemon.durations``): config errors carry the parser's message."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

from sladaemon.durations import format_duration, parse_duration, parse_period


def _validate(value: object) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise PydanticCustomError("duration", "{reason}", {"reason": str(exc)}) from None


def _validate_period(value: object) -> timedelta:
    try:
        return parse_period(value)
    except ValueError as exc:
        raise PydanticCustomError("period", "{reason}", {"reason": str(exc)}) from None


Duration = Annotated[
    timedelta,
    BeforeValidator(_validate),
    PlainSerializer(format_duration, return_type=str),
]
Period = Annotated[timedelta, BeforeValidator(_validate_period)]
