"""Failures as people read them: one sentence, what happened and what to do, never a traceback."""

from __future__ import annotations


class SetupError(ValueError):
    """A reason the server will not start, in one sentence."""


def plain_error(e: BaseException) -> str:
    """One line a person can read: what happened, without a traceback."""
    text = " ".join(str(e).split())[:240]
    return text or type(e).__name__


ASK_ADMIN = "if it keeps happening, tell your administrator."
# Failures of the LLM service, told apart by class name so that no client library is imported
# here (openai, httpx and the standard library each have their own classes for these).
# Timeouts come first: openai's APITimeoutError is a kind of APIConnectionError.
_LLM_PROBLEMS = (
    (("APITimeoutError", "TimeoutException", "Timeout", "TimeoutError"),
     f"The answering service took too long to reply. Please try again; {ASK_ADMIN}"),
    (("APIConnectionError", "ConnectError", "ConnectionError"),
     "The answering service (the language model) cannot be reached right now. Please try "
     f"again in a few minutes; {ASK_ADMIN}"),
    (("AuthenticationError", "PermissionDeniedError"),
     "The answering service refused this app's key. Please tell your administrator: the "
     "LLM key in the settings needs checking."),
    (("RateLimitError",),
     "The answering service is busy with too many requests. Please wait a minute and ask "
     "again."),
)


def _class_names(e: BaseException) -> set[str]:
    """Class names of an error, its bases and the errors it was raised from."""
    names: set[str] = set()
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        names.update(k.__name__ for k in type(e).__mro__)
        e = e.__cause__ or e.__context__
    return names


def friendly_error(e: BaseException) -> str:
    """What went wrong and what to do, in words for people who never see a traceback."""
    names = _class_names(e)
    for classes, sentence in _LLM_PROBLEMS:
        if names.intersection(classes):
            return sentence
    return (f"Sorry, I could not answer that: {plain_error(e)}. Please try again in a moment; "
            f"{ASK_ADMIN}")
