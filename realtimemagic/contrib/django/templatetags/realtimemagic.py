"""``{% load realtimemagic %}``: the tags of the realtimemagic app.

``{% realtime_endpoint %}`` renders ``settings.REALTIMEMAGIC_ENDPOINT`` (HTML-escaped, as every
tag output under autoescaping), for a ``src`` attribute or the client's constructor::

    <script src="{% realtime_endpoint %}/realtimemagic.js"></script>
    <script>var client = new realtimeMagic.Client('{% realtime_endpoint %}');</script>

``{% realtime_endpoint as url %}`` stores it in a variable instead (``{{ url|escapejs }}``).
"""
from django import template

from ..endpoint import realtime_endpoint as endpoint

register = template.Library()


@register.simple_tag(name="realtime_endpoint")
def realtime_endpoint() -> str:
    return endpoint()
