"""Typed application state of the auth service."""

from __future__ import annotations

from aiohttp import web

from roomcast_core.settings import Settings

SETTINGS_KEY = web.AppKey("settings", Settings)
