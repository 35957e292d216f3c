"""Test app: rings and never answers (the caller must CANCEL)."""

from siphon.app import App
from siphon.io.call import SipCall

app = App(name="ring_forever")


@app.on_call
async def ring(call: SipCall) -> None:
    await call.ring()
    await call.wait_ended()
