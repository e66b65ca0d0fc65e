"""The SockJS protocol with no I/O: frames, the session state machine with its outbox, the session
registry and the static resources.  Nothing here imports gevent, socket or WSGI; time is passed in.
"""
from .frames import Close, OutgoingMessage, decode_messages, quote, render
from .registry import SessionRegistry
from .session import Outbox, Session, State

__all__ = ["Close", "OutgoingMessage", "Outbox", "Session", "SessionRegistry", "State",
           "decode_messages", "quote", "render"]
