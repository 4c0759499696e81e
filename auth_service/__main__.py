"""``python -m auth_service`` runs the command line."""

from auth_service.cli import main

main()
