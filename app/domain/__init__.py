"""The domain's own words: errors services raise and the vocabulary every layer shares.

The lowest layer: it imports nothing of ours, so models, services and the web edge can all use it.
"""
