"""Applications the tests serve with rtm-serve (tests/ is on the servers' PYTHONPATH)."""
import gevent

from realtimemagic import RealTimeMagic
from realtimemagic.auth import AuthenticationError, Authenticator
from realtimemagic.exceptions import ProtocolError


# -- push traps: drop, pass, replace-and-refeed -------------------------------------------------

def drop_secrets(conn, channel, message):
    if message == "secret":
        return False
    return None


def pass_everything(conn, channel, message):
    return True


def redirect_to_loud(conn, channel, message):
    # Replace: "shout" messages go to the "loud" channel, upper-cased; the next trap sees that.
    if channel == "shout":
        return "loud", str(message).upper()
    return None


def add_bang(conn, channel, message):
    if channel == "loud":
        return channel, message + "!"
    return None


traps = RealTimeMagic()
traps.push_traps.extend([drop_secrets, pass_everything, redirect_to_loud, add_bang])


# -- authenticators: subscribe and publish refused separately ---------------------------------

class ReadOnlyNews(Authenticator):
    """news:* may be read by anyone, written by nobody."""

    def check_channel(self, conn, channel):
        pass

    def check_message(self, conn, channel, message):
        raise AuthenticationError("news is read-only")


class NoSecretChannels(Authenticator):
    """Seed style: check() serves subscribe and publish; applies to every channel."""

    def check(self, conn, channel):
        if channel.startswith("secret"):
            raise AuthenticationError("no secrets here")


class TokenInQuery(Authenticator):
    """vip:* needs ?token=letmein."""

    def check_channel(self, conn, channel):
        if conn.info.query.get("token") != "letmein":
            raise AuthenticationError("vip needs a token")

    check_message = lambda self, conn, channel, message: self.check_channel(conn, channel)


guarded = RealTimeMagic()
guarded.authenticators["news"].append(ReadOnlyNews())
guarded.authenticators["default"].append(NoSecretChannels())
guarded.authenticators["vip"].append(TokenInQuery())


# -- hooks that fail, and closers --------------------------------------------------------------

def explode(conn, message):
    if message == "explode":
        raise RuntimeError("boom (on purpose)")
    if message == "refuse":
        raise ProtocolError("bad_request", "refused by the application")
    return None


def say_goodbye(conn):
    conn.master.publish("goodbyes", conn.session_id)


def on_open_hello(conn, conn_info):
    conn.send({"hello": conn.session_id, "transport": conn_info.transport})


faulty = RealTimeMagic(max_subscriptions=3, max_message_size=1000, rate_limit=20)
faulty.receivers.append(explode)
faulty.openings.append(on_open_hello)
faulty.closers.append(say_goodbye)


# -- ordering while other connections' hooks wait on I/O -----------------------------------------

def numbered(conn, message):
    if isinstance(message, dict) and "block" in message:
        gevent.sleep(message["block"])  # stands for a slow query or HTTP call
        conn.send({"unblocked": True})
    elif isinstance(message, dict) and "n" in message:
        conn.send({"n": message["n"]})


ordering = RealTimeMagic(rate_limit=100000, max_pending_messages=100)
ordering.receivers.append(numbered)


# -- pub/sub requests of one connection complete in order, even when their checks wait ---------

class SlowChecks(Authenticator):
    def check(self, conn, channel):
        gevent.sleep(0.3)  # a database lookup


ordering.authenticators["slowauth"].append(SlowChecks())


# -- an authenticator that reads cookies: allowed_origins automatic -----------------------------

class SiteCookie(Authenticator):
    """Trusts the origins in RTM_TEST_TRUSTED_ORIGINS (comma-separated); lets every connection
    in (the origin check is what tests/test_origins_browser.py looks at)."""
    uses_cookies = True

    def trusts_origin(self, origin):
        import os
        return origin in os.environ.get("RTM_TEST_TRUSTED_ORIGINS", "").split(",")

    def check(self, conn, channel):
        pass


cookie_site = RealTimeMagic()
cookie_site.authenticators["default"].append(SiteCookie())


# -- many history channels, published in-process (tests/test_attacks_history.py) -------------

def flood_history(conn, message):
    """{"flood": n, "prefix": p}: publish once to each of n channels hist:<p>-<i>, then answer
    {"flooded": n}.  Yields now and then, so the server keeps serving meanwhile."""
    if not (isinstance(message, dict) and "flood" in message):
        return None
    for number in range(message["flood"]):
        conn.master.publish("hist:%s-%d" % (message["prefix"], number), number)
        if number % 1000 == 999:
            gevent.sleep(0)
        if number % 10000 == 9999:
            conn.send({"flooding": number + 1})  # the client knows it is not stuck
    conn.send({"flooded": message["flood"]})
    return False


history_flood = RealTimeMagic(rate_limit=1000)
history_flood.receivers.append(flood_history)
