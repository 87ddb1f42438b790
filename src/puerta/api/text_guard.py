"""Reject path and query parameters that could not be stored or looked up (NUL characters,
unpaired surrogates) with a 400 naming the parameter, before any database query sees them."""

from __future__ import annotations

from fastapi import Request

from puerta.text import check_text


async def storable_parameters(request: Request) -> None:
    for name, value in request.path_params.items():
        if isinstance(value, str):
            check_text(value, name)
    for name, value in request.query_params.multi_items():
        check_text(value, name)
