"""Monitors: Redis pub/sub messages reach the browsers.

    redis-cli PUBLISH events '{"temperature": 21}'
    -> every client subscribed to events gets {"temperature": 21}
    redis-cli PUBLISH jobs:42 '"done"'
    -> every client subscribed to jobs:42 gets "done"      (the pattern jobs:*)

    rtm-serve examples.monitor_redis:rtm                # URL from RTM_MONITOR_REDIS_URL
    python examples/monitor_redis.py

A message that is not JSON makes the function raise: the error is logged and the monitor goes
on with the next message.  See docs/monitors.md.
"""
from realtimemagic import patch_all
patch_all()  # first: sockets (redis-py) cooperative

import json
import os

from realtimemagic import RealTimeMagic
from realtimemagic.monitors.redis import RedisMonitor

URL = os.environ.get('RTM_MONITOR_REDIS_URL', 'redis://127.0.0.1:6379/0')

redis_monitor = RedisMonitor(url=URL)


@redis_monitor.monitor('events')
def events(message, pubsub):
    pubsub.publish('events', json.loads(message.data))


@redis_monitor.pattern('jobs:*')
def jobs(message, pubsub):
    pubsub.publish(message.channel, json.loads(message.data))


rtm = RealTimeMagic()
rtm.monitors.extend([events, jobs])

if __name__ == '__main__':
    rtm.start()
