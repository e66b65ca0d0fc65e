"""The example site's tables and users, without manage.py and without prompts::

    python -m examples.django_site.users alice:secret bob:secret:editors,staff

creates the tables (and, with PostgreSQL, the schema of ``DJANGO_SITE_PG_SCHEMA``), then each
user with that password (and those groups; an existing user gets them too), and prints
``{"alice": 1, "bob": 2}``: the users' ids, as JSON.
"""
import json
import os
import sys
from typing import Iterable, List, Optional


def setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_site.settings")
    import django
    django.setup()


def create_tables() -> None:
    from django.core.management import call_command
    from django.db import connection
    schema = os.environ.get("DJANGO_SITE_PG_SCHEMA")
    if connection.vendor == "postgresql" and schema:
        with connection.cursor() as cursor:
            cursor.execute("CREATE SCHEMA IF NOT EXISTS %s" % connection.ops.quote_name(schema))
    call_command("migrate", interactive=False, verbosity=0)


def create_user(username: str, password: str, groups: Iterable[str] = ()) -> int:
    """Create or update ``username``; its id."""
    from django.contrib.auth.models import Group, User
    user = User.objects.filter(username=username).first()
    if user is None:
        user = User.objects.create_user(username, password=password)
    else:
        user.set_password(password)
        user.save()
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    return user.pk


def main(argv: Optional[List[str]] = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    setup()
    create_tables()
    ids = {}
    for spec in arguments:
        username, _, rest = spec.partition(":")
        password, _, groups = rest.partition(":")
        if not username or not password:
            sys.exit("users: expected username:password[:group,...], got %r" % spec)
        ids[username] = create_user(username, password, [g for g in groups.split(",") if g])
    print(json.dumps(ids))


if __name__ == "__main__":
    main()
