"""The API explorer's assets (/docs), served by the app itself: no CDN, so /docs works offline and
behind the Great Firewall. The files are Swagger UI's dist files as the pinned `swagger-ui-bundle`
package ships them."""
from apiflask import APIBlueprint
from flask import abort, send_from_directory
from swagger_ui_bundle import swagger_ui_path

PREFIX = "/docs/assets"
# The only files /docs references; nothing else in the package directory is served.
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png")

# APIFlask's /docs page takes its asset URLs from these settings (its defaults point at a CDN).
SETTINGS = {
    "SWAGGER_UI_CSS": f"{PREFIX}/swagger-ui.css",
    "SWAGGER_UI_BUNDLE_JS": f"{PREFIX}/swagger-ui-bundle.js",
    "SWAGGER_UI_STANDALONE_PRESET_JS": f"{PREFIX}/swagger-ui-standalone-preset.js",
    "DOCS_FAVICON": f"{PREFIX}/favicon-32x32.png",
}

bp = APIBlueprint("docs_assets", __name__, enable_openapi=False)


@bp.get(f"{PREFIX}/<name>")
def asset(name):
    if name not in ASSETS:
        abort(404)
    # The files change only with the pinned package version: a day of caching is safe.
    return send_from_directory(str(swagger_ui_path), name, max_age=86400)
