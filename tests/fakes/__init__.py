"""Loopback fakes of the outside services (WeChat, WeCom, OSS) that tests run against."""
