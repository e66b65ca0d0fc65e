"""Pub/sub: channels and their fan-out, the wire protocol, the handler, history and presence."""
