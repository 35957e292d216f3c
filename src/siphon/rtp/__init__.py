"""The RTP media engine, sans-IO.

Everything in this package takes bytes and ``now`` (float seconds) and returns
values or events: no sockets, no event loop, no clock reads. The drivers in
``siphon.io`` own the datagram sockets and feed these cores.

- ``siphon.rtp.seq``: sequence-number and timestamp arithmetic (wrap-aware) and the
  RFC 3550 Appendix A.1 sequence tracker.
- ``siphon.rtp.packet``: RTP packet parsing and serialisation (RFC 3550 §5).
- ``siphon.rtp.rtcp``: RTCP packets, reception statistics and the report scheduler
  (RFC 3550 §6).
"""
