"""Web console: server-rendered pages (Jinja2) in zh-Hans / zh-Hant / en; assets ship with the package."""
