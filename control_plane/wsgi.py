"""WSGI entry point, e.g. `gunicorn control_plane.wsgi -k gthread --threads 8`."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "control_plane.settings")
application = get_wsgi_application()
