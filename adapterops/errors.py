"""The one exception type a user can cause; its message says what to do next."""


class AdapterOpsError(Exception):
    """A problem the user can fix: bad config, unreadable input, unapproved corpus, failed gate."""
