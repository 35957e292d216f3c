"""Per-turn latency: where the time between the caller's last word and our answer went.

All instants are event-loop times (``loop.time()``, monotonic seconds). Each figure
is measured where it happens: the VAD's end of speech (audio time mapped back to
the loop clock), the endpointing decision, the STT's final transcript, the LLM's
first token, the TTS's first audio, and the first RTP packet of the answer (the
media clock's tick that sent its first frame).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TurnMetrics:
    turn_id: int
    speech_ended_at: float | None = None  # end of the caller's speech (VAD)
    endpoint_at: float | None = None  # the turn detector decided the caller has finished
    endpoint_reason: str = ""
    stt_final_at: float | None = None  # last FINAL transcript of the turn arrived
    llm_first_token_at: float | None = None
    tts_first_audio_at: float | None = None
    first_rtp_at: float | None = None  # first frame of the answer went out on the wire
    interrupted: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: int = 0

    def _ms(self, later: float | None, earlier: float | None) -> float | None:
        if later is None or earlier is None:
            return None
        return round((later - earlier) * 1000.0, 1)

    @property
    def endpointing_ms(self) -> float | None:
        """End of speech -> endpoint decision."""
        return self._ms(self.endpoint_at, self.speech_ended_at)

    @property
    def llm_ttft_ms(self) -> float | None:
        """Endpoint decision -> LLM first token."""
        return self._ms(self.llm_first_token_at, self.endpoint_at)

    @property
    def tts_ttfa_ms(self) -> float | None:
        """LLM first token -> TTS first audio."""
        return self._ms(self.tts_first_audio_at, self.llm_first_token_at)

    @property
    def playout_ms(self) -> float | None:
        """TTS first audio -> first RTP packet (queueing to the next media tick)."""
        return self._ms(self.first_rtp_at, self.tts_first_audio_at)

    @property
    def response_ms(self) -> float | None:
        """End of the caller's speech -> first RTP packet of the answer: what the caller waits."""
        return self._ms(self.first_rtp_at, self.speech_ended_at)

    @property
    def overhead_ms(self) -> float | None:
        """Endpoint decision -> first RTP packet: the framework's share with instant providers."""
        return self._ms(self.first_rtp_at, self.endpoint_at)

    def as_dict(self) -> dict[str, float | int | str | bool | None]:
        return {
            "turn_id": self.turn_id,
            "endpoint_reason": self.endpoint_reason,
            "endpointing_ms": self.endpointing_ms,
            "stt_final_ms": self._ms(self.stt_final_at, self.speech_ended_at),
            "llm_ttft_ms": self.llm_ttft_ms,
            "tts_ttfa_ms": self.tts_ttfa_ms,
            "playout_ms": self.playout_ms,
            "response_ms": self.response_ms,
            "interrupted": self.interrupted,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tool_calls": self.tool_calls,
        }

    def summary(self) -> str:
        """One log line: ``turn 3: response 612 ms (endpoint 210, llm 150, tts 80, rtp 12)``."""

        def fmt(value: float | None) -> str:
            return "-" if value is None else f"{value:.0f}"

        return (
            f"turn {self.turn_id}: response {fmt(self.response_ms)} ms "
            f"(endpoint {fmt(self.endpointing_ms)} [{self.endpoint_reason or '-'}], "
            f"llm {fmt(self.llm_ttft_ms)}, tts {fmt(self.tts_ttfa_ms)}, "
            f"rtp {fmt(self.playout_ms)})" + (" interrupted" if self.interrupted else "")
        )
