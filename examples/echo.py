"""Plays back to the caller what it hears, half a second later; logs every DTMF digit.

    siphon dev examples/echo.py --sip-port 5070

The call is recorded like every call (stereo WAV in ./recordings, left = caller,
right = what we played back).
"""

import asyncio
import logging
from collections import deque

import numpy as np

from siphon.app import App
from siphon.events import DtmfReceived
from siphon.io.call import SipCall

log = logging.getLogger("echo")
app = App(name="echo")

DELAY_FRAMES = 25  # 25 x 20 ms = 0.5 s
SILENCE = np.zeros(160, dtype=np.int16)


async def log_dtmf(call: SipCall) -> None:
    async for event in call.iter_events():
        if isinstance(event, DtmfReceived):
            log.info("DTMF %s (%d ms)", event.digit, event.duration_ms)


@app.on_call
async def echo(call: SipCall) -> None:
    await call.answer()
    delay = deque([SILENCE] * DELAY_FRAMES)
    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(log_dtmf(call), name=f"echo:{call.call_id}:dtmf")
        async for frame in call.frames():
            delay.append(frame)
            call.play(delay.popleft())
