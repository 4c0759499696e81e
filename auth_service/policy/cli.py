"""``auth-service policy check FILE``: the checking logic, without the click wrapper.

Returns the exit code and the lines to print so the CLI owner only wires it
up; each error line reads ``FILE:LINE: rule 'NAME': message``.
"""

import os

from auth_service.policy.compile import compile_policy
from auth_service.policy.load import load_policy_file
from auth_service.policy.model import PolicyError


def check_policy_file(path: str | os.PathLike[str]) -> tuple[int, list[str]]:
    """Validate a policy file: ``(0, [summary])`` when valid, else ``(1, [one line per error])``."""
    source = os.fspath(path)
    try:
        policy = load_policy_file(path)
        compile_policy(policy)
    except PolicyError as exc:
        return 1, exc.lines()
    except OSError as exc:
        return 1, [f"{source}: cannot read: {exc.strerror or exc}"]
    count = len(policy.rules)
    return 0, [f"{source}: ok ({count} rule{'' if count == 1 else 's'})"]
