from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import render

from realtimemagic.auth.token import make_token


def user_channel(user) -> str:
    """The channel of a user's own notifications: ``user:<id>``."""
    return "user:%s" % user.pk


@login_required
def home(request):
    """The page that receives the user's messages, over a connection authenticated by the
    session cookie."""
    return render(request, "home.html", {"channel": user_channel(request.user)})


@login_required
def realtime_token(request):
    """A token for pages that connect from another origin, where the cookie does not travel:
    it allows the user's own channel for an hour."""
    token = make_token(settings.REALTIMEMAGIC_TOKEN_KEY, request.user.pk,
                       channels=[user_channel(request.user)], ttl=3600)
    return JsonResponse({"token": token, "channel": user_channel(request.user)})
