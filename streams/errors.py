"""The one exception a person's mistake raises (its own module, so that ``python -m
streams.cli`` and the modules it calls agree on the class)."""


class UserError(Exception):
    """An error the user can fix; its message says how."""
