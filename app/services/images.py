"""Reading and rendering pictures with Pillow: what a file really is, and its thumbnail and
EXIF-free display copy. Pure functions over bytes; storage and rows are photos.py's business.
"""
import io
import warnings

from PIL import ExifTags, Image, ImageOps

from app.domain.errors import Invalid, TooLarge

MAX_BYTES = 10 * 1024 * 1024
# 48–50 MP phone photos (8160 × 6120) pass; a JPEG is decoded scaled down, so its size in memory
# does not grow with its pixel count (see _shrink).
MAX_PIXELS = 64_000_000
# PNG and WebP cannot be decoded scaled: Pillow holds the whole canvas, 1 byte a pixel for grey
# and palette PNGs, 4 for colour ones, and about 16 for WebP (libwebp's canvas, a bytes copy and
# the image). Their pixel limit keeps that under MAX_DECODE_BYTES.
MAX_DECODE_BYTES = 128_000_000
WEBP_BYTES_PER_PIXEL = 16
# Pillow names a phone camera's multi-picture JPEG (main image plus depth map or preview) "MPO";
# its first picture is an ordinary JPEG, and that is what browsers and the copies show.
FORMATS = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
JPEG_FORMATS = ("JPEG", "MPO")
SWAPPED = (5, 6, 7, 8)  # EXIF orientations that turn the picture a quarter: width and height swap
STRIP_ROWS = 64  # rows of a PNG/WebP reduced at a time
THUMB_SIDE = 320
DISPLAY_SIDE = 1600


def too_big():
    return TooLarge("file_too_large", f"照片不能超过 {MAX_BYTES // (1024 * 1024)} MB", field="file")


def sniff(data):
    """The real content type of an upload, read from its bytes (never the name or the declared
    type). Refuses anything but JPEG/PNG/WebP, oversized files and decompression bombs: a small
    file may declare a huge canvas, so the pixel count is checked before anything is decoded."""
    if len(data) > MAX_BYTES:
        raise too_big()
    try:
        with warnings.catch_warnings():
            # Belt and braces: the pixel limit below already refuses what Pillow would only warn about.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                if img.format not in FORMATS:
                    raise Invalid("unsupported_image_type", "只支持 JPEG、PNG 或 WebP 格式的照片", field="file")
                width, height = img.size
                limit = _pixel_limit(img)
                if width * height > limit:
                    raise _bomb(limit)
                img.verify()
                return FORMATS[img.format]
    except Invalid:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise _bomb()
    except Exception:
        # Pillow signals a broken or foreign file with many exception types; all mean "not an image".
        raise Invalid("not_an_image", "文件不是有效的图片，请重新拍照上传", field="file")


def _pixel_limit(img):
    """How many pixels this file may have: MAX_PIXELS, and for formats decoded whole, what fits
    in MAX_DECODE_BYTES."""
    if img.format in JPEG_FORMATS:
        return MAX_PIXELS
    if img.format == "WEBP":
        per_pixel = WEBP_BYTES_PER_PIXEL
    else:
        per_pixel = 1 if img.mode in ("1", "L", "P") else 4
    return min(MAX_PIXELS, MAX_DECODE_BYTES // per_pixel)


def _bomb(limit=MAX_PIXELS):
    return Invalid("image_too_large", f"图片像素过多（上限 {limit // 1_000_000} 百万像素）", field="file")


def render(data):
    """(width, height) as shown, thumbnail JPEG, display JPEG.

    Memory stays bounded whatever canvas a small file declares: the picture is shrunk to display
    size first (see _shrink) and only the small copy is flattened, turned upright and encoded.
    Fresh RGB pixels are saved without `exif=`, so no metadata (GPS included) reaches the copies.
    """
    with Image.open(io.BytesIO(data)) as img:
        width, height = img.size  # read before _shrink: a JPEG draft changes img.size
        orientation = img.getexif().get(ExifTags.Base.Orientation, 1)
        display = _orient(_shrink(img, DISPLAY_SIDE), orientation)
    if orientation in SWAPPED:
        width, height = height, width
    thumb = display.copy()
    thumb.thumbnail((THUMB_SIDE, THUMB_SIDE))
    return (width, height), _jpeg(thumb, 80), _jpeg(display, 85)


def _shrink(img, side):
    """The picture as RGB on white, at most `side` pixels on its longer side.

    A JPEG is decoded straight at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, via draft), so a
    50 MP photo never exists at full size in memory. PNG and WebP cannot be decoded scaled: they
    are decoded once, then box-reduced a strip at a time, each strip flattened first, so no second
    full-size copy is made (Pillow's own resize and exif_transpose copy the whole canvas, and a
    palette or RGBA canvas is converted whole first). Flattening before averaging is exact: the
    mean of colours composited on white is the composite of the mean.
    """
    if img.format in JPEG_FORMATS:
        img.draft("RGB", _within(img.size, side))
    img.load()
    width, height = img.size
    factor = max(1, max(width, height) // side)  # leaves between side and 2 × side for thumbnail()
    small = Image.new("RGB", (-(-width // factor), -(-height // factor)), "white")
    rows = factor * max(1, STRIP_ROWS // factor)  # whole reduction blocks per strip
    for top in range(0, height, rows):
        strip = _flatten(img.crop((0, top, width, min(top + rows, height))))
        small.paste(strip.reduce(factor), (0, top // factor))
    small.thumbnail((side, side))
    return small


def _within(size, side):
    """`size` scaled to fit a side × side box, aspect kept (what thumbnail() will produce)."""
    scale = min(1, side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _orient(img, orientation):
    """Turn the shrunk picture upright. ImageOps.exif_transpose reads the tag from the image it
    is given, and the shrunk copy has no EXIF of its own, so the original's tag is handed over."""
    img.getexif()[ExifTags.Base.Orientation] = orientation
    return ImageOps.exif_transpose(img)


def _flatten(img):
    """RGB on a white background (JPEG has no transparency)."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, "white")
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img.convert("RGB")


def _jpeg(img, quality):
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality, optimize=True)
    return out.getvalue()
