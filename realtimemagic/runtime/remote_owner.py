"""The owner's side of routing (realtimemagic.runtime.remote): this process holds a session
and serves the requests other processes forward for it -- a send is delivered and answered
"sent", a receiving request gets a :class:`RemoteReceiver` whose chunks are posted back, and a
client reported gone ends that loop as a local interruption would."""
import logging
from typing import Any, Dict, List

import gevent

from ..exceptions import RoutesUnavailable
from ..sockjs.session import Session
from ..transports import HTTP_RECEIVERS
from .receiving import Receiver, stream_frames
from .routes import Message, Routes

log = logging.getLogger("realtimemagic.routing")


class RemoteReceiver(Receiver):
    """The owner's stand-in for a request held by another process: what the receiving loop
    yields is buffered and posted when the loop waits or ends."""

    __slots__ = ("remote", "node", "request_id", "chunks")

    def __init__(self, remote: "OwnerSide", node: str, request_id: str) -> None:
        super().__init__()
        self.remote = remote
        self.node = node
        self.request_id = request_id
        self.chunks: List[bytes] = []

    def flush(self, last: bool) -> None:
        # The chunks as they are (each an HTTP chunk at the client, as for a local request).
        data = [chunk.decode("utf-8") for chunk in self.chunks]
        self.chunks = []
        if data or last:
            self.remote.routes.post(self.node, {"k": "data", "r": self.request_id, "d": data,
                                                "e": last})

    def wait(self) -> None:
        self.flush(False)  # raises if it cannot go: the loop ends as for a failed write
        super().wait()

    def client_gone(self) -> bool:
        """Asks the process holding the request (a client that just went away may not have
        been reported yet: the request replacing it must not get 2010)."""
        if not self.interrupted and self.remote.probe(self):
            self.interrupted = True
            self.wakeup()
        return self.interrupted


class OwnerSide:
    """The owner's part of :class:`~.remote.RemoteSessions`, which holds the state."""

    routes: Routes
    endpoints: Dict[str, Any]  # prefix -> endpoint
    receivers: Dict[str, RemoteReceiver]  # request id -> the stand-in serving it here

    def probe(self, receiver: RemoteReceiver) -> bool:
        """Has the client of ``receiver``'s request gone away?  (Asked of the process holding
        the request: the forwarding side's work.)"""
        raise NotImplementedError

    def _owned(self, message: Message) -> None:
        """A message for a session held here: "attach", "send" or "gone"."""
        if message.get("k") == "gone":
            receiver = self.receivers.get(str(message.get("r")))
            if receiver is not None:
                receiver.interrupted = True
                receiver.wakeup()
        else:
            endpoint = self.endpoints.get(str(message.get("p")))
            session = endpoint.sessions.get(message.get("s")) if endpoint else None
            if session is None or not isinstance(session.key, str):
                gevent.spawn(self._answer, message, {"k": "missing", "r": message.get("r")})
            elif message.get("k") == "send":
                gevent.spawn(self._deliver, endpoint, session, message)
            else:
                gevent.spawn(self._serve, endpoint, session, message)

    def _answer(self, request: Message, answer: Message) -> None:
        try:
            self.routes.post(request["n"], answer)
        except (RoutesUnavailable, KeyError) as error:
            log.debug("routing answer not sent: %s", error)

    def _deliver(self, endpoint: Any, session: Session, message: Message) -> None:
        endpoint.deliver(session, message["m"])
        self._answer(message, {"k": "sent", "r": message["r"]})

    def _serve(self, endpoint: Any, session: Session, message: Message) -> None:
        """Run the receiving loop for a request held by another process."""
        transport = HTTP_RECEIVERS.get(str(message.get("t")))
        if transport is None:
            return
        receiver = RemoteReceiver(self, message["n"], message["r"])
        self.receivers[receiver.request_id] = receiver
        try:
            now = endpoint.clock()
            previous = session.receiver
            if previous is not None and previous.client_gone():
                session.detach(previous, now, interrupted=True)
            first = session.attach(receiver, now)
            for chunk in stream_frames(transport, message.get("st"), session, receiver, first,
                                       endpoint.settings.response_limit, endpoint.clock):
                receiver.chunks.append(chunk)
            if not receiver.interrupted:
                receiver.flush(True)
        except RoutesUnavailable as error:
            log.debug("routed response ended: %s", error)
        finally:
            self.receivers.pop(receiver.request_id, None)
