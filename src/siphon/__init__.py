"""SIPHON: AI phone agents that speak SIP and RTP themselves, in-process."""

__version__ = "0.1.0"
