"""The authenticator shape, with a toy rule instead of Django (see docs/hooks.md).

- ``private:<name>`` channels: only a client that connected with ``?user=<name>`` may
  subscribe or publish (``check``, seed style, serves both).
- every channel: publishing a message containing "spam" is refused (``check_message``).
"""
from realtimemagic import RealTimeMagic
from realtimemagic.auth import AuthenticationError, Authenticator


class PrivateChannels(Authenticator):
    error_message = "This channel is private."

    def check(self, conn, channel):
        owner = channel.split(':', 1)[1]
        # "private:" has no owner: nobody may use it (else "?user=" would).
        if not owner or conn.info.query.get('user') != owner:
            raise AuthenticationError(self.error_message)


class NoSpam(Authenticator):
    def check_channel(self, conn, channel):
        pass  # anyone may listen

    def check_message(self, conn, channel, message):
        if 'spam' in str(message):
            raise AuthenticationError('No spam, please.')


rtm = RealTimeMagic()
rtm.authenticators['private'].append(PrivateChannels())
rtm.authenticators['default'].append(NoSpam())

if __name__ == '__main__':
    rtm.start()
