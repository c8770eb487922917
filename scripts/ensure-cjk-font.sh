#!/usr/bin/env bash
# Labels print Chinese: make sure fontconfig knows a Simplified-Chinese TrueType font (the PDF embeds
# it; reportlab can embed TrueType outlines only, so Noto Sans CJK's CFF fonts do not count).
# On Debian/Ubuntu as root this installs WenQuanYi Micro Hei; elsewhere it says what to do.
# Skipped when LABEL_FONT_PATH names a font file.
set -uo pipefail

[ -n "${LABEL_FONT_PATH:-}" ] && [ -f "$LABEL_FONT_PATH" ] && exit 0
have_font() { command -v fc-list >/dev/null && [ -n "$(fc-list ':lang=zh-cn:fontformat=TrueType' file)" ]; }
have_font && exit 0

if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "installing a CJK font for labels (fonts-wqy-microhei)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends fontconfig fonts-wqy-microhei >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq --no-install-recommends fontconfig fonts-wqy-microhei >/dev/null 2>&1; }
fi
have_font && exit 0
echo "WARNING: no Chinese TrueType font: labels will lack their Chinese text." >&2
echo "  Install one (Debian/Ubuntu: sudo apt-get install fonts-wqy-microhei) or set LABEL_FONT_PATH." >&2
exit 0
