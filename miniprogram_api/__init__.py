"""Blueprints the WeChat mini program calls, under /mp/v1."""


def register(app):
    from miniprogram_api.auth import bp as auth_bp

    app.register_blueprint(auth_bp)
