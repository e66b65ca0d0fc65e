"""Monitors: PostgreSQL notifications reach the browsers (the seed's example).

    NOTIFY status, '{"some_info": 1}'      -- in psql, or from a trigger
    -> every client subscribed to client_channel gets {"info1": 1}

    rtm-serve examples.monitor_psql:rtm                 # DSN from RTM_MONITOR_DSN
    python examples/monitor_psql.py

A payload without "some_info" (or not JSON) makes the function raise: the error is logged and
the monitor goes on with the next notification.  See docs/monitors.md.
"""
from realtimemagic import patch_all
patch_all()  # first: sockets and psycopg2 cooperative

import json
import os

from realtimemagic import RealTimeMagic
from realtimemagic.monitors.psql import PsqlMonitor

DSN = os.environ.get('RTM_MONITOR_DSN', 'dbname=test host=127.0.0.1')

psql = PsqlMonitor(dsn=DSN)


@psql.monitor('status')
def status_changes(notification, pubsub):
    data = json.loads(notification.payload)
    pubsub.publish('client_channel', {'info1': data['some_info']})


rtm = RealTimeMagic()
rtm.monitors.append(status_changes)

if __name__ == '__main__':
    rtm.start()
