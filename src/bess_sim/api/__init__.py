"""FastAPI supervisor: REST, WebSocket push and the dashboard."""
