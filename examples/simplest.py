"""The simplest possible realtime server: plain pub/sub at /pubsub on 127.0.0.1:9000.

    python examples/simplest.py         (or: rtm-serve examples.simplest:rtm)
"""
from realtimemagic import RealTimeMagic

rtm = RealTimeMagic()

if __name__ == '__main__':
    rtm.start()
