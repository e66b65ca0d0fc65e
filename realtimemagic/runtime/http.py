"""A complete small HTTP response, for every WSGI application of the runtime."""
from http import HTTPStatus
from typing import List

from ..transports.base import Headers


def respond(start_response, status: int, headers: Headers, body: str = "") -> List[bytes]:
    data = body.encode("utf-8")
    if status not in (204, 304):
        headers = headers + [("Content-Length", str(len(data)))]
    start_response("%d %s" % (status, HTTPStatus(status).phrase), headers)
    return [data] if data else []
