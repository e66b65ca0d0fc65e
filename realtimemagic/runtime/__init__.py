"""The gevent runtime: the WSGI endpoint and router, the pywsgi handler that exposes the socket
for WebSocket upgrades, and the server lifecycle."""
