"""`clipcite serve`: the web app. `app` wires the page; `services` owns the background threads;
`render` builds the HTML; `attachments` handles uploaded files; `filters` reads the chat's
choices; `errors` turns failures into sentences; `static/` holds the page's JS and CSS."""
