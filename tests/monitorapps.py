"""Monitor applications the tests serve (tests/ is on the servers' PYTHONPATH).

The examples' own functions, decorated again on monitors whose timings come from the environment
(RTM_MONITOR_KEEPALIVE, RTM_MONITOR_CHECK_TIMEOUT, seconds), so that a test can find a half-open
connection in seconds; a function that waits in the database; and a receiver that answers
``{"monitor_status": true}`` with ``monitor_status(rtm)``.
"""
from realtimemagic import patch_all
patch_all()

import os

from examples import monitor_psql, monitor_redis
from realtimemagic import RealTimeMagic, pgdriver
from realtimemagic.monitors import monitor_status
from realtimemagic.monitors.psql import PsqlMonitor
from realtimemagic.monitors.redis import RedisMonitor

TIMINGS = {"keepalive_interval": float(os.environ.get("RTM_MONITOR_KEEPALIVE", "10")),
           "check_timeout": float(os.environ.get("RTM_MONITOR_CHECK_TIMEOUT", "5"))}


def report_status(conn, message):
    if isinstance(message, dict) and message.get("monitor_status"):
        conn.send({"monitor_status": monitor_status(conn.master)})
        return False
    return None


# -- PostgreSQL: the example's function, and one that waits in the database -----------------------

psql_monitor = PsqlMonitor(dsn=monitor_psql.DSN, **TIMINGS)
status_changes = psql_monitor.monitor("status")(monitor_psql.status_changes.function)


@psql_monitor.monitor("rtm_sleep")
def sleep_in_database(notification, pubsub):
    """NOTIFY rtm_sleep, '2': a query that takes 2 s, then "slept" on the channel slept."""
    name = pgdriver.parse_dsn(monitor_psql.DSN).get("application_name", "rtm-test")
    connection = pgdriver.connect(monitor_psql.DSN, application_name=name + "-sleeper")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_sleep(%s)", (float(notification.payload),))
    finally:
        connection.close()
    pubsub.publish("slept", notification.payload)


psql_app = RealTimeMagic()
psql_app.monitors.extend([status_changes, sleep_in_database])
psql_app.receivers.append(report_status)


# -- Redis: the example's functions ---------------------------------------------------------------

redis_monitor = RedisMonitor(url=monitor_redis.URL, **TIMINGS)
events = redis_monitor.monitor("events")(monitor_redis.events.function)
jobs = redis_monitor.pattern("jobs:*")(monitor_redis.jobs.function)

redis_app = RealTimeMagic()
redis_app.monitors.extend([events, jobs])
redis_app.receivers.append(report_status)
