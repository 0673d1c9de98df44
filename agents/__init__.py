"""Faust agents: one module per agent. Each exposes `register(app, ...)`; app.faust_app wires them."""
