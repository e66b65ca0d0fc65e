"""The app's configuration: label ``realtimemagic`` (not ``django``, the last part of its
name), and a system check for the endpoint setting."""
from django.apps import AppConfig
from django.core import checks

from .endpoint import check_endpoint_setting


class RealTimeMagicConfig(AppConfig):
    name = "realtimemagic.contrib.django"
    label = "realtimemagic"
    verbose_name = "realtimemagic"

    def ready(self) -> None:
        checks.register(check_endpoint_setting, checks.Tags.templates)
