"""Handling messages manually: anything a client sends that is not a pub/sub request is
published to the 'echo' channel, to which every client is subscribed on open."""
from realtimemagic import RealTimeMagic


def on_open(self, conn_info):
    self.subscribe({'channel': 'echo'})


def echo(conn, message):
    conn.master.publish('echo', message)


rtm = RealTimeMagic()
rtm.openings.append(on_open)
rtm.receivers.append(echo)

if __name__ == '__main__':
    rtm.start()
