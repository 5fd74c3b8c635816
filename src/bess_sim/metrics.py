"""Prometheus metrics of one simulator, in its own registry (two simulators can share a
process). Components get this object passed in and update it; ``GET /metrics`` renders it."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ticks = Counter(
            "bess_ticks",
            "Simulation ticks run (on a headend: ticks every agent has delivered in full)",
            registry=r,
        )
        self.telemetry_rows = Counter(
            "bess_telemetry_rows",
            "Telemetry snapshots handed to the sinks, one per asset and tick (on a headend: "
            "the agents' snapshots it mirrored)",
            registry=r,
        )
        self.tick_duration = Histogram(
            "bess_tick_duration_seconds",
            "Wall time spent in one tick (physics + publishing)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.tick_loop_held = Histogram(
            "bess_tick_loop_held_seconds",
            "Longest stretch one real-time tick held the event loop (the physics and "
            "reference-swapping sinks run in a worker thread; fault transitions and the other "
            "sinks on the loop, the database buffer in slices)",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
            registry=r,
        )
        self.tick_overruns = Counter(
            "bess_tick_overruns", "Ticks that ended after the next deadline", registry=r
        )
        self.sim_time = Gauge("bess_sim_time_seconds", "Simulated seconds since start", registry=r)
        self.dispatches = Counter(
            "bess_dispatches",
            "Dispatch records entering a status, by source",
            ["source", "status"],
            registry=r,
        )
        self.modbus_requests = Counter(
            "bess_modbus_requests",
            "Modbus requests by function code and exception code (0 = success)",
            ["function_code", "exception_code"],
            registry=r,
        )
        self.modbus_request_path = Counter(
            "bess_modbus_request_path",
            "Modbus requests by the path that answered them: fast (plain reads answered from "
            "the packed register images) or slow (pymodbus: writes, exceptions, hooks)",
            ["path"],
            registry=r,
        )
        self._modbus_connections(r)
        self._faults(r)
        self.db_queue_rows = Gauge(
            "bess_db_queue_rows", "Telemetry rows waiting for the database writer", registry=r
        )
        self.db_dropped_rows = Counter(
            "bess_db_dropped_rows",
            "Telemetry rows dropped because the writer buffer was full",
            registry=r,
        )
        self.db_written_rows = Counter(
            "bess_db_written_rows", "Telemetry rows written to the database", registry=r
        )

    def _faults(self, r: CollectorRegistry) -> None:
        """Fault injection (DESIGN §11, docs/faults.md)."""
        self.faults = Counter(
            "bess_faults",
            "Fault transitions by kind and event (scheduled, started, ended)",
            ["kind", "event"],
            registry=r,
        )
        self.faults_active = Gauge(
            "bess_faults_active", "Faults in effect now, by kind", ["kind"], registry=r
        )
        self.fault_comm_effects = Counter(
            "bess_fault_comm_effects",
            "Requests/connections a comm fault acted on (exception, dropped, late, refused, "
            "offline)",
            ["outcome"],
            registry=r,
        )

    def _modbus_connections(self, r: CollectorRegistry) -> None:
        """Modbus connection hygiene (issue 9, docs/modbus.md)."""
        self.modbus_connections_open = Gauge(
            "bess_modbus_connections", "Open Modbus TCP connections, all ports", registry=r
        )
        self.modbus_connections_accepted = Counter(
            "bess_modbus_connections_accepted", "Modbus TCP connections accepted", registry=r
        )
        self.modbus_connections_refused = Counter(
            "bess_modbus_connections_refused",
            "Modbus TCP connections refused: limit (modbus_max_connections per port) or "
            "fd_exhausted (out of file descriptors)",
            ["reason"],
            registry=r,
        )
        self.modbus_connections_closed = Counter(
            "bess_modbus_connections_closed",
            "Modbus TCP connections closed, by reason (client, idle_timeout, frame_timeout, "
            "bad_frame, hook, fault, shutdown)",
            ["reason"],
            registry=r,
        )
        self.modbus_bad_frames = Counter(
            "bess_modbus_bad_frames",
            "Modbus TCP frames that closed their connection (bad MBAP header, incomplete)",
            registry=r,
        )
        self.modbus_backpressure = Counter(
            "bess_modbus_backpressure_pauses",
            "Times a client's answers filled the write buffer and reading from it paused",
            registry=r,
        )
        self.modbus_output_buffer = Gauge(
            "bess_modbus_output_buffer_bytes",
            "Modbus answers queued in the server's write buffers, all connections",
            registry=r,
        )

    def add_agent_gauges(self) -> AgentGauges:
        """The scale-out headend's per-agent gauges (DESIGN §15), in this registry."""
        return AgentGauges(self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class AgentGauges:
    """Per shard agent, on the headend's ``/metrics``: agents serve no HTTP, so the headend
    shows what their heartbeats say (cluster/headend.py)."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.online = Gauge(
            "bess_agent_online",
            "1 while the shard agent is heard from, 0 once it is offline (silent for 2.5 s: "
            "its assets show offline and commands to them answer 503)",
            ["shard"],
            registry=r,
        )
        self.assets = Gauge(
            "bess_agent_assets",
            "Assets the shard agent serves (its last heartbeat)",
            ["shard"],
            registry=r,
        )
        self.tick = Gauge(
            "bess_agent_tick",
            "The shard agent's tick count (its last heartbeat)",
            ["shard"],
            registry=r,
        )
        self.tick_p99 = Gauge(
            "bess_agent_tick_p99_seconds",
            "p99 of the wall time of the shard agent's last 120 ticks (from its heartbeats)",
            ["shard"],
            registry=r,
        )
