"""The staff web dashboard (/dashboard): pages rendered on the server, buttons as CSRF-checked form posts."""
