"""Any process serves any request: a SockJS session's HTTP requests that reach a process other
than the one holding the session are served through the holder (its *owner*), over the broker.

The broker side (:class:`~.routes.Routes`, realtimemagic.routing) keeps a directory, session
-> owning process, and one inbox per process.  A request for a session held here costs nothing
extra: the directory is asked only for sessions this process does not hold.

- A send (xhr_send, jsonp_send) is forwarded; the client's answer waits for the owner's "sent".
- A receiving request (xhr, xhr_streaming, eventsource, htmlfile, jsonp) attaches a remote
  receiver to the session at the owner, which runs the same receiving loop as for a local
  request (:func:`stream_frames`: heartbeats, response_limit, close frames, 2010) and sends the
  encoded chunks back; this process writes them to the client.  A client that goes away is
  reported to the owner ("gone"), which ends the loop as for a local interruption (1002).
  Chunks of one response travel in order through one inbox, so each message reaches exactly one
  response, in order.  At most a response_limit's worth of chunks waits here for a slow client.

A process that dies stops refreshing its directory entries; they expire after ``routing_ttl``.
A request waiting on an owner re-checks the directory every half ``routing_ttl`` and gives up
when the owner no longer holds the session (a send gets 404, a receiving request ends, and the
client's next request opens a new session), so a dead owner is noticed within 1.5 times
``routing_ttl``; with Redis at once, when the owner's inbox has no listener.

Messages between processes are JSON objects; ``k`` says what each is:
``attach``/``send``/``gone`` go to the owner, ``data``/``sent``/``missing`` back; ``probe``
asks the holder of a request whether its client is still there (``probed``).

This module is the forwarding side (requests here for sessions held elsewhere) and the inbox;
the owner's side (serving what others forward) is :mod:`.remote_owner`.
"""
import itertools
import logging
import time
from collections import OrderedDict, deque
from typing import Any, Deque, Dict, Iterable, Iterator, List, Optional

import gevent

from ..config import FIXED
from ..exceptions import RoutesUnavailable
from ..http import Request
from ..sockjs.session import INTERRUPTED, Session
from ..transports.base import HttpTransport
from .receiving import Receiver, watch_disconnect
from .sockets import client_socket
from .remote_owner import OwnerSide, RemoteReceiver
from .routes import Message, Routes

log = logging.getLogger("realtimemagic.routing")

PROBE_TIMEOUT = FIXED.routing_probe_timeout  # s: a new request learns whether the one it
#                                              would replace is still there


class Forwarded:
    """A request of this process waiting for its owner's answers."""

    def __init__(self, request_id: str, receiver: Receiver) -> None:
        self.request_id = request_id
        self.receiver = receiver
        self.answers: Deque[Message] = deque()

    def next(self, timeout: float) -> Optional[Message]:
        """The next answer; None after ``timeout`` seconds or when the client went away."""
        while not self.answers:
            if self.receiver.interrupted or not self.receiver.event.wait(timeout):
                return None
            self.receiver.event.clear()
        return self.answers.popleft()


class RemoteSessions(OwnerSide):
    """This process's side of routing, shared by its endpoints (keyed by prefix); what it does
    as a session's owner is inherited from :class:`OwnerSide`."""

    def __init__(self, routes: Routes, ttl: float, remembered: int) -> None:
        """``ttl``: routing_ttl (s); ``remembered``: how many sessions' owners are kept (the
        least recently used go first)."""
        self.routes = routes
        self.ttl = ttl
        self.remembered = remembered
        self.endpoints: Dict[str, Any] = {}
        self.forwarded: Dict[str, Forwarded] = {}
        self.receivers: Dict[str, RemoteReceiver] = {}
        #: key -> owner, for the sessions this process last forwarded requests of.
        self.owners: "OrderedDict[str, str]" = OrderedDict()
        self._ids = itertools.count(1)
        self._refresher: Optional[gevent.Greenlet] = None

    def add(self, endpoint: Any) -> None:
        self.endpoints[endpoint.prefix] = endpoint

    def start(self) -> None:
        if self._refresher is None:
            self.routes.start(self._received)
            self._refresher = gevent.spawn(self._refresh_forever)
            log.info("process %s: SockJS requests of other processes' sessions are routed "
                     "through the broker", self.routes.node)

    def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.kill(block=False)
            self._refresher = None
            self.routes.stop()

    @staticmethod
    def key(endpoint: Any, session_id: str) -> str:
        return endpoint.prefix + "/" + session_id

    # -- the directory ---------------------------------------------------------------------

    def _owner(self, key: str, claim: bool) -> Optional[str]:
        """The process that holds ``key`` when it is not this one: remembered from an earlier
        request, else asked of the directory (with ``claim``: taken for this process when
        nobody holds it).  None: this process holds it, nobody does, or the broker cannot say
        (then a new session is served here)."""
        owner = self.owners.get(key)
        if owner is not None:
            self.owners.move_to_end(key)
            return owner
        try:
            owner = self.routes.claim(key) if claim else self.routes.owner(key)
        except RoutesUnavailable as error:
            log.warning("session directory unavailable (%s): serving here", error)
            return None
        if owner is None or owner == self.routes.node:
            return None
        self.owners[key] = owner
        if len(self.owners) > self.remembered:
            self.owners.popitem(last=False)
        return owner

    def _forget(self, key: str, owner: str) -> None:
        if self.owners.get(key) == owner:
            del self.owners[key]

    def ended(self, endpoint: Any, sessions: Iterable[Session]) -> None:
        keys = [self.key(endpoint, session.key) for session in sessions
                if isinstance(session.key, str)]
        if keys:
            gevent.spawn(self._release, keys)

    def _release(self, keys: List[str]) -> None:
        try:
            for key in keys:
                self.routes.release(key, self.routes.node)
        except RoutesUnavailable as error:  # the entries expire on their own
            log.warning("session directory: release failed: %s", error)

    def _refresh_forever(self) -> None:
        while True:
            gevent.sleep(self.ttl / 3)
            for endpoint in list(self.endpoints.values()):
                sessions = {self.key(endpoint, session.key): session
                            for session in endpoint.sessions if isinstance(session.key, str)}
                if not sessions:
                    continue
                try:
                    lost = self.routes.refresh(list(sessions))
                except RoutesUnavailable as error:
                    log.warning("session directory: refresh failed: %s", error)
                    continue
                except Exception:  # a bug: keep refreshing, or others take our sessions
                    log.exception("session directory: refresh failed")
                    continue
                for key in lost:  # another process took it while we seemed dead
                    sessions[key].close(*INTERRUPTED)

    def _alive(self, key: str, owner: str) -> bool:
        try:
            return self.routes.owner(key) == owner
        except RoutesUnavailable:
            return True  # the broker is away, not necessarily the owner: wait on

    # -- this process forwards -------------------------------------------------------------

    def _forward(self, owner: str, message: Message, receiver: Receiver) -> Optional[Forwarded]:
        request_id = "%s.%d" % (self.routes.node, next(self._ids))
        forwarded = Forwarded(request_id, receiver)
        self.forwarded[request_id] = forwarded
        message.update(r=request_id, n=self.routes.node)
        try:
            self.routes.post(owner, message)
        except RoutesUnavailable:
            del self.forwarded[request_id]
            return None
        return forwarded

    def _next_answer(self, key: str, owner: str, forwarded: Forwarded,
                     patience: float) -> Optional[Message]:
        """The owner's next answer; None when the client went away, the owner no longer holds
        the session, or nothing came for ``patience`` seconds (an owner sends at least a
        heartbeat every heartbeat_interval: a message was lost on the way)."""
        deadline = time.monotonic() + patience
        while True:
            answer = forwarded.next(min(self.ttl / 2, max(0.0, deadline - time.monotonic())))
            if answer is not None:
                return None if answer["k"] == "missing" else answer
            if (forwarded.receiver.interrupted or time.monotonic() >= deadline
                    or not self._alive(key, owner)):
                return None

    def _patience(self, endpoint: Any) -> float:
        return endpoint.settings.heartbeat_interval + self.ttl

    def _evict(self, key: str, owner: str) -> None:
        try:
            self.routes.release(key, owner)
        except RoutesUnavailable:
            pass

    def send(self, endpoint: Any, session_id: str, messages: List[str]) -> bool:
        """Forward a client's messages to the session's owner: True once it accepted them,
        False when no process holds the session."""
        key = self.key(endpoint, session_id)
        for _ in range(2):  # a remembered owner may be out of date: then the directory's
            owner = self._owner(key, claim=False)
            if owner is None:
                return False
            forwarded = self._forward(owner, {"k": "send", "p": endpoint.prefix,
                                              "s": session_id, "m": messages}, Receiver())
            if forwarded is not None:
                try:
                    if self._next_answer(key, owner, forwarded,
                                         self._patience(endpoint)) is not None:
                        return True
                finally:
                    self.forwarded.pop(forwarded.request_id, None)
            else:
                self._evict(key, owner)
            self._forget(key, owner)
        return False

    def receive(self, endpoint: Any, session_id: str, request: Request,
                transport: HttpTransport, state: Any, start_response,
                headers: List) -> Optional[Iterator[bytes]]:
        """Serve a receiving request for a session not held here through its owner; None when
        this process owns it now (the caller creates it)."""
        key = self.key(endpoint, session_id)
        for _ in range(3):  # remembered owner, directory's owner, then ours once it is gone
            owner = self._owner(key, claim=True)
            if owner is None:
                return None
            body = self._receive_through(owner, endpoint, session_id, request, transport,
                                         state, start_response, headers)
            if body is not None:
                return body
            self._forget(key, owner)
        return None

    def _receive_through(self, owner: str, endpoint: Any, session_id: str, request: Request,
                         transport: HttpTransport, state: Any, start_response,
                         headers: List) -> Optional[Iterator[bytes]]:
        key = self.key(endpoint, session_id)
        receiver = Receiver(client_socket(request.environ))
        forwarded = self._forward(owner, {"k": "attach", "p": endpoint.prefix, "s": session_id,
                                          "t": transport.name, "st": state}, receiver)
        patience = self._patience(endpoint)
        first = (None if forwarded is None
                 else self._next_answer(key, owner, forwarded, patience))
        if forwarded is None or first is None:
            if forwarded is not None:
                self.forwarded.pop(forwarded.request_id, None)
            if not receiver.interrupted:
                self._evict(key, owner)
            return None
        start_response("200 OK", headers)
        return self._relay(key, owner, forwarded, first, patience)

    def _relay(self, key: str, owner: str, forwarded: Forwarded, answer: Optional[Message],
               patience: float) -> Iterator[bytes]:
        watcher = watch_disconnect(forwarded.receiver)
        completed = False
        try:
            while answer is not None:  # None: the client went away, or the owner
                for chunk in answer["d"]:
                    yield chunk.encode("utf-8")
                if answer.get("e"):
                    completed = True
                    return
                answer = self._next_answer(key, owner, forwarded, patience)
        finally:
            if watcher is not None:
                watcher.kill()
            self.forwarded.pop(forwarded.request_id, None)
            if not completed:
                try:
                    self.routes.post(owner, {"k": "gone", "r": forwarded.request_id})
                except RoutesUnavailable:
                    pass

    def probe(self, receiver: RemoteReceiver) -> bool:
        """Has the client of ``receiver``'s request gone away?  False when its process does
        not answer within PROBE_TIMEOUT."""
        forwarded = self._forward(receiver.node, {"k": "probe", "q": receiver.request_id},
                                  Receiver())
        if forwarded is None:
            return True  # its process is gone, and the request with it
        try:
            answer = forwarded.next(PROBE_TIMEOUT)
        finally:
            self.forwarded.pop(forwarded.request_id, None)
        return answer is not None and answer.get("g") is True

    # -- the inbox -----------------------------------------------------------------------

    def _received(self, message: Message) -> None:
        """A message from the inbox (the listener's greenlet: nothing here may block, and
        nothing may end the listener)."""
        try:
            self._dispatch(message)
        except Exception:
            log.exception("routing message %r not handled", message.get("k"))

    def _dispatch(self, message: Message) -> None:
        kind = message.get("k")
        if kind in ("data", "sent", "missing", "probed"):
            forwarded = self.forwarded.get(str(message.get("r")))
            if forwarded is not None:
                forwarded.answers.append(message)
                forwarded.receiver.wakeup()
        elif kind == "probe":
            forwarded = self.forwarded.get(str(message.get("q")))
            gone = forwarded is None or forwarded.receiver.client_gone()  # does not wait
            gevent.spawn(self._answer, message, {"k": "probed", "r": message.get("r"),
                                                 "g": gone})
        elif kind in ("gone", "attach", "send"):
            self._owned(message)
        else:
            log.warning("ignoring a routing message of kind %r", kind)
