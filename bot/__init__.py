"""The WeChat side: wechatpy clients, send channels, message rendering, the WeCom callback."""
