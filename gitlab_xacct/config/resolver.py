"""How a setting is looked up: command-line flag, then XACCT_* variable, then GitLab's
predefined CI_* variable, then the built-in default, with where each value came from.

An empty variable counts as unset (GitLab jobs often define variables as "" to switch them off).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from gitlab_xacct.config import validate
from gitlab_xacct.config.options import KNOWN_VARIABLES, Option
from gitlab_xacct.errors import ConfigError


def check_unknown_variables(env: Mapping[str, str]) -> None:
    """A misspelt XACCT_* variable is silently ignored by a shell script; we say so."""
    token_variable = env.get("XACCT_ID_TOKEN_VARIABLE", "")
    for name in sorted(env):
        if name.startswith("XACCT_") and name not in KNOWN_VARIABLES and name != token_variable:
            import difflib  # only for a mistake: not worth its import on every start

            close = difflib.get_close_matches(name, sorted(KNOWN_VARIABLES), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "see gitlab-xacct --help"
            raise ConfigError(f"{name}: unknown gitlab-xacct variable; {hint}")


class Resolver:
    """Looks a setting up by precedence and remembers where each value came from."""

    def __init__(
        self,
        env: Mapping[str, str],
        flags: Mapping[str, object],
        options: Iterable[Option],
        pinned: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.env = env
        self._flags = flags
        self._options = {o.dest: o for o in options}
        self._pinned = dict(pinned or {})

    def pinned(self, values: Mapping[str, tuple[str, str]]) -> Resolver:
        """This resolver with some settings fixed to (value, origin), whatever the flags and
        variables say: an XACCT_DESTINATIONS entry's fields, named by the entry in messages."""
        return Resolver(self.env, self._flags, self._options.values(), self._pinned | dict(values))

    def __contains__(self, dest: str) -> bool:
        """Whether the command this resolver serves takes the setting `dest`."""
        return dest in self._options

    def option(self, dest: str) -> Option:
        return self._options[dest]

    def flag(self, dest: str) -> object:
        return self._flags.get(dest)

    def get(self, dest: str) -> tuple[str, str] | None:
        option = self._options[dest]
        if dest in self._pinned:
            return self._pinned[dest]
        flag = self._flags.get(dest)
        if flag is not None and not isinstance(flag, bool | list):
            return str(flag), option.flag
        value = self.env.get(option.env, "") if option.env else ""
        return (value, option.env) if value.strip() else None

    def required(self, dest: str, what: str) -> tuple[str, str]:
        found = self.get(dest)
        if found is None:
            option = self._options[dest]
            name = f"{option.env} ({option.flag})" if option.env else option.flag
            raise ConfigError(f"{name}: not set; give {what}")
        return found

    def fallback(self, *names: str) -> tuple[str, str] | None:
        for name in names:
            if self.env.get(name, "").strip():
                return self.env[name], name
        return None

    def boolean(self, dest: str) -> bool:
        flag = self._flags.get(dest)
        if isinstance(flag, bool):
            return flag
        found = self.get(dest)
        return validate.boolean(*found) if found else False

    def list(self, dest: str) -> tuple[list[str], str] | None:
        option = self._options[dest]
        flag = self._flags.get(dest)
        if isinstance(flag, list) and flag:
            return [str(v) for v in flag], option.flag
        found = self.get(dest)
        return (split_list(found[0]), found[1]) if found else None


def split_list(value: str) -> list[str]:
    return [v for v in re.split(r"[\s,]+", value) if v]
