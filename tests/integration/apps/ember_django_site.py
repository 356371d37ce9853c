"""A one-module Django site for tests/test_wsgi_servers.py: settings, urls, views."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path, re_path
from ember_burn import burn_alpha, burn_beta, burn_items, dump_profile
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

DEBUG = False
SECRET_KEY = "ember-tests-only"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "ember_django_site"
USE_TZ = True
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, object] = {}
MIDDLEWARE = ["ember.django.EmberMiddleware"]
EMBER = {"rate": 250, "budget": 0}


def alpha(request: HttpRequest) -> HttpResponse:
    burn_alpha()
    return HttpResponse(b"alpha")


def beta(request: HttpRequest, pk: str) -> HttpResponse:
    burn_beta()
    return HttpResponse(f"beta {pk}".encode())


def item(request: HttpRequest, item_id: int) -> HttpResponse:
    burn_items()
    return HttpResponse(f"item {item_id}".encode())


def profile(request: HttpRequest) -> HttpResponse:
    return HttpResponse(dump_profile().encode())


def metrics(request: HttpRequest) -> HttpResponse:
    """/metrics as the README shows it for Django."""
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


urlpatterns = [
    path("alpha", alpha),
    re_path(r"^beta/(?P<pk>[0-9]+)$", beta),
    path("items/<int:item_id>", item),
    path("_profile", profile),
    path("metrics", metrics),
]
