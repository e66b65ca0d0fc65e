"""The seed's "slow" test: each message runs a query that sleeps in PostgreSQL.

Three messages whose hooks each wait 5 s are all answered after about 5 s, not 15: each message
runs in its own greenlet, and psycopg2 is made cooperative by psycogreen.  (Messages of *one*
connection are handled in order, so the page below opens three connections, one per message.)

    python examples/slow/server.py                      # DSN from RTM_SLOW_DSN
    python -m http.server -d examples/slow 8080         # then open http://127.0.0.1:8080/
"""
from realtimemagic import patch_all
patch_all()  # first: psycopg2 and sockets cooperative

import logging
import os

import psycopg2

from realtimemagic import RealTimeMagic

DSN = os.environ.get('RTM_SLOW_DSN', 'dbname=test host=127.0.0.1')
SECONDS = float(os.environ.get('RTM_SLOW_SECONDS', '5'))


def slow_stuff(seconds):
    connection = psycopg2.connect(DSN)
    try:
        with connection.cursor() as cursor:
            cursor.execute('SELECT pg_sleep(%s)', (seconds,))
    finally:
        connection.close()


def on_open(self, conn_info):
    self.subscribe({'channel': 'echo'})


def echo(conn, message):
    logging.info('echo receiver')
    slow_stuff(SECONDS)
    conn.master.publish('echo', message)


rtm = RealTimeMagic(local=False)
rtm.openings.append(on_open)
rtm.receivers.append(echo)

if __name__ == '__main__':
    rtm.start()
