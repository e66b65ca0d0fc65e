"""The Django app ``realtimemagic.contrib.django`` (label ``realtimemagic``).

Add it to ``INSTALLED_APPS`` and set where the pages find the realtime server::

    INSTALLED_APPS = [..., 'realtimemagic.contrib.django']
    REALTIMEMAGIC_ENDPOINT = 'https://rtm.example.com/pubsub'

then, in a template::

    {% load realtimemagic %}
    <script src="{% realtime_endpoint %}/realtimemagic.js"></script>
    <script>var client = new realtimeMagic.Client('{% realtime_endpoint %}');</script>

It has no models and no migrations.  The authenticator that reads the site's session on the
realtime server is :class:`realtimemagic.auth.contrib.DjangoAuthenticator`.
"""
