"""The seed's stress server: every message a client sends is broadcast to every client (all are
subscribed to 'echo' on open).  Compare with base.py, a plain SockJS broadcast server."""
from realtimemagic import RealTimeMagic


def on_open(self, conn_info):
    self.subscribe({'channel': 'echo'})


def echo(conn, message):
    conn.master.publish('echo', message)


rtm = RealTimeMagic(local=False, rate_limit=1000000)
rtm.openings.append(on_open)
rtm.receivers.append(echo)

if __name__ == '__main__':
    rtm.start()
