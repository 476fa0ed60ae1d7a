"""A plugin with a hook name no spec has."""

from weaver import hookimpl


@hookimpl
def guard_requests() -> None:  # one letter too many
    pass
