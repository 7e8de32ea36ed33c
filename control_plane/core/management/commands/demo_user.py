"""Create or refresh the demo login: a staff user with a new random password and an API token.

Prints JSON {"username", "password", "token"}; the password is shown this once
(only its hash is stored). Used by `make demo`.
"""

from __future__ import annotations

import json
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token


class Command(BaseCommand):
    help = "Create or refresh the demo staff user; print its one-time password and API token as JSON."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")

    def handle(self, *args, username: str, **options):
        user, _ = get_user_model().objects.get_or_create(username=username)
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.is_staff = user.is_superuser = True
        user.save()
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(json.dumps({"username": username, "password": password, "token": token.key}))
