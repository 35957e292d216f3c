"""Test agent with scripted providers: `siphon dev tests/apps/fake_agent.py` or run it directly
(`python tests/apps/fake_agent.py --sip-port 5070`: agent.start(), production mode)."""

from siphon.agent import Agent
from siphon.testing import FakeLLM, FakeSTT, FakeTTS

agent = Agent(
    agent_name="fake",
    llm=FakeLLM(default_reply="Okay."),
    stt=FakeSTT(default_transcript="hello"),
    tts=FakeTTS(),
    greeting_instructions="Greet the caller.",
    silence_timeout=None,
)

if __name__ == "__main__":
    agent.start()
