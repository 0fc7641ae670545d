"""The one exception type a user can cause; its message says what to do next."""


class AdapterOpsError(Exception):
    """A problem the user can fix: bad config, unreadable input, unapproved corpus, failed gate."""

    retryable = False   # whether running the step again, unchanged, may succeed (Prefect retries only those)


class RegistryError(AdapterOpsError):
    """The MLflow registry failed or could not be reached (anything but "does not exist"): the step stops."""

    retryable = True


def retry_unless_user_error(task, run, state) -> bool:
    """A Prefect retry condition: retry crashes, lost workers and registry faults; a user error would fail again."""
    error = state.result(raise_on_failure=False)
    return not isinstance(error, AdapterOpsError) or error.retryable
