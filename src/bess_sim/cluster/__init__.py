"""Scale-out (DESIGN §15): a headend (REST/WebSocket/dashboard/database) and shard agents
(tick loop + Modbus of asset index mod N == K) over NATS JetStream. See docs/scale-out.md.

Imports point inward: ``cluster`` uses ``sim``, ``modbus``, ``api`` and ``runtime``; nothing
of ours imports ``cluster`` except the CLI."""
