"""/docs works offline and in China: the page loads nothing from another host."""
import re
from urllib.parse import urljoin, urlparse


def test_docs_page_loads_every_asset_from_the_app_itself(client):
    res = client.get("/docs")
    assert res.status_code == 200
    html = res.get_data(as_text=True)

    referenced = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r'\burl:\s*"([^"]+)"', html)
    assert len(referenced) >= 5  # the CSS, the two scripts, the favicon and the spec
    for url in referenced:
        absolute = urljoin("http://localhost/docs", url)
        assert urlparse(absolute).netloc == "localhost", f"/docs loads {url} from another host"
        asset = client.get(urlparse(absolute).path)
        assert asset.status_code == 200, url
        assert asset.content_length and asset.content_length > 100, url
    assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").get_data(as_text=True)


def test_only_the_docs_assets_are_served(client):
    assert client.get("/docs/assets/swagger-ui.css").mimetype == "text/css"
    assert client.get("/docs/assets/index.html").status_code == 404
    assert client.get("/docs/assets/..%2F__init__.py").status_code == 404
