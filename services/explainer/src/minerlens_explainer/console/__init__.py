"""The operator console: server-rendered HTML pages (Jinja2, autoescaped, no JavaScript) served by the
explainer on its own origin, from what Redis already holds. ``routes/console.py`` maps URLs to these:

* ``session``: console logins (a cookie naming a Redis session; the token itself is never stored or shown)
* ``render``: the template environment and the security headers (CSP without scripts, no framing)
* ``charts``: the inline SVG geometry (sparklines, score timeline, explanation waterfall, syscall mix)
* ``reference``: the benign syscall mix of a model (its ``background.npz``)
* ``pages``: what each page shows, read from the stores
"""
