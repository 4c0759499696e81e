"""Keycloak setup for DevOps: a declarative desired-state file reconciled with a live realm
through python-keycloak (``auth-service keycloak plan|apply|check|export``, CONTRACT §8).

Modules: ``model`` (msgspec Structs), ``loader`` (TOML, overlay, placeholders, located errors),
``representation`` (Keycloak JSON shapes, realm export), ``reconcile`` (live read, diff, plan,
apply steps), ``session`` (admin login, rendering, applying, one-line errors; loaded only by
the commands that talk to Keycloak), ``cli`` (the click group).
"""

from .loader import DesiredStateError, load_desired_state
from .model import DesiredState
from .representation import export_realm

__all__ = ("DesiredState", "DesiredStateError", "export_realm", "load_desired_state")
