"""Answers every call and stays in it until the caller hangs up.

siphon dev examples/answer.py --sip-port 5070
"""

from siphon.app import App
from siphon.io.call import SipCall

app = App(name="answer")


@app.on_call
async def answer(call: SipCall) -> None:
    await call.ring()
    await call.answer()
    await call.wait_ended()
