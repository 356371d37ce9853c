"""A FastAPI app served by uvicorn for test_window_summaries_servers.py."""

from __future__ import annotations

import asyncio
import time

import windows_file  # noqa: F401  (the sink)
from fastapi import FastAPI, HTTPException

from ember.asgi import EmberMiddleware

SLEEP = 0.003

app = FastAPI()


@app.get("/items/{item_id}")
async def item(item_id: int) -> dict[str, int]:
    await asyncio.sleep(SLEEP)
    return {"id": item_id}


@app.get("/sync")
def sync() -> dict[str, bool]:
    time.sleep(SLEEP)
    return {"ok": True}


@app.get("/boom")
async def boom() -> None:
    await asyncio.sleep(SLEEP)
    raise RuntimeError("boom")


@app.get("/unavailable")
async def unavailable() -> None:
    await asyncio.sleep(SLEEP)
    raise HTTPException(503)


app.add_middleware(EmberMiddleware, window=0.2, metrics=False)
