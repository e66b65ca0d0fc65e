"""On open: every client is subscribed to the 'echo' channel as soon as it connects.

``local=False`` binds all interfaces, as in the seed; ``rtm-serve --host 127.0.0.1`` overrides.
"""
from realtimemagic import RealTimeMagic


def on_open(self, conn_info):
    self.subscribe({'channel': 'echo'})


rtm = RealTimeMagic(local=False)
rtm.openings.append(on_open)

if __name__ == '__main__':
    rtm.start()
