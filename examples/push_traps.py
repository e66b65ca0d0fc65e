"""Push traps: change what clients publish.  Every published message comes out as "[ message ]".

The trap publishes the rewritten message itself and drops the original (returning False).  The
seed passed ``async=False`` to publish; in Python 3 that keyword is a syntax error, and publish
never blocks anyway.  A trap may also return ``(channel, message)`` to replace the message for
the next trap and for delivery; see docs/hooks.md.
"""
from realtimemagic import RealTimeMagic


def change_the_published_messages(conn, channel, message):
    conn.master.publish(channel, '[ %s ]' % message)
    return False  # Don't send the message


rtm = RealTimeMagic()
rtm.push_traps.append(change_the_published_messages)

if __name__ == '__main__':
    rtm.start()
