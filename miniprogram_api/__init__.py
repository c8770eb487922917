"""Blueprints the WeChat mini program calls, under /mp/v1."""


def register(app):
    from miniprogram_api.auth import bp as auth_bp
    from miniprogram_api.customer import bp as customer_bp
    from miniprogram_api.supplier import bp as supplier_bp
    from miniprogram_api.uploads import bp as uploads_bp

    for bp in (auth_bp, supplier_bp, uploads_bp, customer_bp):
        app.register_blueprint(bp)
