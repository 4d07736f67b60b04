"""clipcite: ask questions of a media archive; every answer cites the recording and the moment.

One import name over the checkout's folders, which pyproject.toml maps under it:
clipcite.assistant (assistant/), clipcite.retrieval (retrieval/), clipcite.ingestion
(ingestion/), clipcite.ui (ui/) and clipcite.prompts (prompts/). eval/ and tests/ stay in the
checkout and are not installed.
"""
