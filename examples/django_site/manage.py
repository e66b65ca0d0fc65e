#!/usr/bin/env python
"""manage.py of the example site, runnable from anywhere: ``python examples/django_site/manage.py
runserver 127.0.0.1:8000``."""
import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_site.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
