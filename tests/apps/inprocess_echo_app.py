"""An in-process service named like a deployment's one, to show that names cannot clash."""

from __future__ import annotations

from headway import Context, Service

echo = Service("Echo")


@echo.handler()
async def shout(ctx: Context, text: str) -> str:
    return text.upper()
