"""`lyricgen serve`'s web side (issue 26): api.py holds the requests and their bounds, app.py
the routes, and page.html, page.css and page.js the page (no build step). The checkpoint and
the drawing, through `sample`'s own path, are commands/serve.py's Engine."""
