"""`lyricgen serve`: a local web page to write songs with (issue 26). api.py holds the requests
and their bounds, engine.py turns one into a song through `sample`'s own path, app.py the
routes, and page.html, page.css and page.js the page (no build step)."""
