"""Blueprints the WeChat mini program calls (registered under /mp/v1 by create_app)."""
