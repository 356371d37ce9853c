"""WSGI entry point of tests/apps/ember_django_site.py."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ember_django_site")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
