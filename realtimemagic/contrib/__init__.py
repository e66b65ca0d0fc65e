"""Integrations with web frameworks: ``realtimemagic.contrib.django`` is a Django app."""
