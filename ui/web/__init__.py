"""`clipcite serve`: the web app. `app` lays out the three pages and wires them to their
handlers in `chat`, `recording` and `library`; `context` holds what every session shares and
decides rights; `services` owns the background threads; `guard` limits sign-ins and keeps the
admin-only routes; `render` builds the HTML; `attachments` handles uploaded files; `filters` reads
the chat's choices; `errors` turns failures into sentences; `static/` holds the JS and CSS."""
